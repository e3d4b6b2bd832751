// DataLoader: the Philox epoch permutation, batch assembly and the prefetching
// worker threads (see loader.hpp for the contract).
#include "loom/data/loader.hpp"

#include "loom/core/threads.hpp"

#include <algorithm>
#include <array>
#include <numeric>
#include <string>
#include <unordered_map>
#include <utility>

#include "loom/autograd/grad_mode.hpp"
#include "loom/core/kernel_profile.hpp"
#include "loom/core/random.hpp"

namespace loom::data {

// --- the epoch permutation -------------------------------------------------

namespace {

// Lane 3 of the Philox counter tags the loader's stream, so that it never
// overlaps the tensor draws of a Generator with the same seed (those use
// counters {block, 0, 0}).
constexpr uint32_t kLoaderStream = 0x6c6f6164u;  // "load"

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  LOOM_CHECK(n >= 0, "epoch_permutation: n must be >= 0, got ", n);
  LOOM_CHECK(epoch >= 0 && epoch < (int64_t{1} << 32), "epoch_permutation: epoch ", epoch,
             " is out of range [0, 2^32)");
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  // Fisher-Yates from the top: step t = n-1-i swaps perm[i] with perm[j],
  // j uniform in [0, i], from 64 random bits (two Philox lanes; one block
  // serves two steps), mapped to [0, i] by a 128-bit multiply (Lemire); the
  // bias is at most (i+1)/2^64.
  const std::array<uint32_t, 2> key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  std::array<uint32_t, 4> block{};
  for (int64_t i = n - 1, t = 0; i > 0; --i, ++t) {
    if (t % 2 == 0) {
      const uint64_t b = static_cast<uint64_t>(t / 2);
      block = philox4x32({static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), static_cast<uint32_t>(epoch),
                          kLoaderStream},
                         key);
    }
    const int lane = static_cast<int>(t % 2) * 2;
    const uint64_t bits = (uint64_t{block[lane]} << 32) | block[lane + 1];
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

std::vector<int64_t> grouped_order(const std::vector<int64_t>& order, const std::vector<int64_t>& keys,
                                   int64_t group_size) {
  LOOM_CHECK(group_size >= 1, "grouped_order: group_size must be >= 1, got ", group_size);
  const auto n = static_cast<int64_t>(order.size());
  LOOM_CHECK(static_cast<int64_t>(keys.size()) == n, "grouped_order: ", keys.size(), " keys for ", n, " examples");
  if (group_size == 1) return order;
  // Each key's examples in the order they are visited, with a read cursor.
  struct Queue {
    std::vector<int64_t> examples;
    size_t next = 0;
  };
  std::unordered_map<int64_t, Queue> queues;
  std::vector<char> placed(static_cast<size_t>(n), 0);
  for (const int64_t i : order) {
    LOOM_CHECK(i >= 0 && i < n && !placed[static_cast<size_t>(i)], "grouped_order: the order is not a permutation of [0, ",
               n, ") (example ", i, ")");
    placed[static_cast<size_t>(i)] = 1;
    queues[keys[static_cast<size_t>(i)]].examples.push_back(i);
  }
  std::fill(placed.begin(), placed.end(), 0);
  std::vector<int64_t> out;
  out.reserve(order.size());
  auto place = [&](int64_t i) {
    placed[static_cast<size_t>(i)] = 1;
    out.push_back(i);
  };
  size_t filler = 0;  // the next position of `order` that may hold an unplaced example
  for (const int64_t opener : order) {
    if (placed[static_cast<size_t>(opener)]) continue;
    const size_t end = std::min(out.size() + static_cast<size_t>(group_size), order.size());
    place(opener);
    Queue& same = queues[keys[static_cast<size_t>(opener)]];
    while (out.size() < end && same.next < same.examples.size()) {
      const int64_t i = same.examples[same.next++];
      if (!placed[static_cast<size_t>(i)]) place(i);
    }
    while (out.size() < end) {  // the key ran out: top up from the rest of the order
      while (placed[static_cast<size_t>(order[filler])]) ++filler;
      place(order[filler]);
    }
  }
  return out;
}

// --- construction ----------------------------------------------------------

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  LOOM_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  const LoaderOptions& o = options_;
  LOOM_CHECK(o.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", o.batch_size);
  LOOM_CHECK(o.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ", o.num_workers);
  LOOM_CHECK(o.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ", o.prefetch);
  LOOM_CHECK(o.world_size >= 1, "DataLoader: world_size must be >= 1, got ", o.world_size);
  LOOM_CHECK(o.rank >= 0 && o.rank < o.world_size, "DataLoader: rank ", o.rank, " is out of range for world_size ",
             o.world_size);
  const int64_t n = dataset_->size();
  LOOM_CHECK(n >= 0, "DataLoader: the dataset reports a negative size ", n);
  LOOM_CHECK(o.group_size >= 1, "DataLoader: group_size must be >= 1, got ", o.group_size);
  if (o.group_size > 1) {
    LOOM_CHECK(static_cast<int64_t>(o.group_keys.size()) == n, "DataLoader: group_keys has ", o.group_keys.size(),
               " keys for a dataset of ", n, " examples");
    LOOM_CHECK(o.batch_size % o.group_size == 0, "DataLoader: batch_size ", o.batch_size,
               " is not a multiple of group_size ", o.group_size, ", so a group would straddle two batches or ranks");
  }
  const int64_t global = o.batch_size * o.world_size;
  batches_per_epoch_ = o.drop_last ? n / global : (n + global - 1) / global;
  const int64_t last = n % global;
  LOOM_CHECK(o.drop_last || last == 0 || last >= o.world_size, "DataLoader: with drop_last = false the last global batch has ",
             last, " examples (dataset size ", n, ", batch_size ", o.batch_size, " x world_size ", o.world_size,
             "), fewer than world_size ", o.world_size, ", so some rank would get none; use drop_last = true");
  start_workers();
}

DataLoader::~DataLoader() { stop_workers(); }

// --- batches ---------------------------------------------------------------

std::shared_ptr<const std::vector<int64_t>> DataLoader::permutation(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = permutations_.find(epoch);
    if (it != permutations_.end()) return it->second;
  }
  // Built outside the lock: two workers may both build it, and agree.
  const int64_t n = dataset_->size();
  std::vector<int64_t> perm;
  if (options_.shuffle) {
    perm = epoch_permutation(n, options_.seed, epoch);
  } else {
    perm.resize(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), int64_t{0});
  }
  if (options_.group_size > 1) perm = grouped_order(perm, options_.group_keys, options_.group_size);
  auto shared = std::make_shared<const std::vector<int64_t>>(std::move(perm));
  std::lock_guard<std::mutex> lock(mutex_);
  auto [it, inserted] = permutations_.emplace(epoch, shared);
  // Requests move forward through the epochs: keep only the latest few.
  while (permutations_.size() > 4) permutations_.erase(permutations_.begin());
  return inserted ? shared : it->second;
}

std::vector<int64_t> DataLoader::batch_indices(int64_t epoch, int64_t batch) const {
  LOOM_CHECK(epoch >= 0, "DataLoader::batch_indices: epoch must be >= 0, got ", epoch);
  LOOM_CHECK(batch >= 0 && batch < batches_per_epoch_, "DataLoader::batch_indices: batch ", batch,
             " is out of range for ", batches_per_epoch_, " batches per epoch");
  const auto perm = permutation(epoch);
  const int64_t n = static_cast<int64_t>(perm->size());
  const int64_t global = options_.batch_size * options_.world_size;
  const int64_t start = batch * global;
  const int64_t m = std::min(global, n - start);  // this global batch's size
  const int64_t lo = start + options_.rank * m / options_.world_size;
  const int64_t hi = start + (options_.rank + 1) * m / options_.world_size;
  return {perm->begin() + lo, perm->begin() + hi};
}

Batch DataLoader::build(int64_t epoch, int64_t batch) const {
  NoGradGuard no_grad;
  static const std::string kLoading = "data loading";
  loom::detail::KernelContextScope profile_as("", kLoading);  // with workers, beside the step rather than in it
  const auto indices = batch_indices(epoch, batch);
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t index : indices) examples.push_back(dataset_->get(index));
  return collate(examples);
}

std::optional<Batch> DataLoader::next() {
  if (batch_ == batches_per_epoch_) {
    ++epoch_;
    batch_ = 0;
    return std::nullopt;
  }
  const int64_t epoch = epoch_, batch = batch_++;  // consumed even if it fails
  Slot slot;
  if (workers_.empty()) {
    try {
      slot.batch = build(epoch, batch);
    } catch (...) {
      slot.error = std::current_exception();
    }
  } else {
    const int64_t job = epoch * batches_per_epoch_ + batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_cv_.wait(lock, [&] { return ready_.count(job) != 0; });
      auto it = ready_.find(job);
      slot = std::move(it->second);
      ready_.erase(it);
      next_consume_ = job + 1;
    }
    work_cv_.notify_all();
  }
  if (slot.error) {
    try {
      std::rethrow_exception(slot.error);
    } catch (const std::exception& e) {
      LOOM_FAIL("DataLoader: building batch ", batch, " of epoch ", epoch, " failed: ", e.what());
    } catch (...) {
      LOOM_FAIL("DataLoader: building batch ", batch, " of epoch ", epoch, " failed with a non-standard exception");
    }
  }
  return std::move(slot.batch);
}

// --- workers ---------------------------------------------------------------

void DataLoader::worker_loop() {
  NoGradGuard no_grad;  // grad mode is per thread: data loading never records
  SerialKernels serial;  // leave the kernel thread pool to the training step
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || next_claim_ - next_consume_ < options_.prefetch; });
    if (stop_) return;
    const int64_t job = next_claim_++;
    lock.unlock();
    Slot slot;
    try {
      slot.batch = build(job / batches_per_epoch_, job % batches_per_epoch_);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    ready_.emplace(job, std::move(slot));
    ready_cv_.notify_all();
  }
}

void DataLoader::start_workers() {
  if (options_.num_workers == 0 || batches_per_epoch_ == 0) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = false;
    next_claim_ = next_consume_ = epoch_ * batches_per_epoch_ + batch_;
    ready_.clear();
  }
  try {
    for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    stop_workers();
    throw;
  }
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.clear();
}

// --- state -----------------------------------------------------------------

nlohmann::json DataLoader::state() const {
  return {{"epoch", epoch_}, {"batch", batch_}, {"seed", options_.seed}};
}

namespace {

const nlohmann::json& require_key(const nlohmann::json& state, const char* key) {
  LOOM_CHECK(state.contains(key), "DataLoader::load_state: missing key '", key, "' in ", state.dump());
  const nlohmann::json& v = state.at(key);
  LOOM_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             "DataLoader::load_state: key '", key, "' must be a non-negative integer, got ", v.dump());
  return v;
}

}  // namespace

void DataLoader::load_state(const nlohmann::json& state) {
  LOOM_CHECK(state.is_object(), "DataLoader::load_state: expected an object {\"epoch\", \"batch\", \"seed\"}, got ",
             state.dump());
  const nlohmann::json& e = require_key(state, "epoch");
  const nlohmann::json& b = require_key(state, "batch");
  const nlohmann::json& s = require_key(state, "seed");
  LOOM_CHECK(e.get<uint64_t>() < (uint64_t{1} << 32), "DataLoader::load_state: key 'epoch' is ", e.dump(),
             ", out of range [0, 2^32)");
  LOOM_CHECK(b.get<uint64_t>() <= static_cast<uint64_t>(batches_per_epoch_), "DataLoader::load_state: key 'batch' is ",
             b.dump(), " but an epoch has ", batches_per_epoch_, " batches (dataset size ", dataset_->size(),
             ", batch_size ", options_.batch_size, ", world_size ", options_.world_size, ")");
  stop_workers();
  epoch_ = e.get<int64_t>();
  batch_ = b.get<int64_t>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    options_.seed = s.get<uint64_t>();
    permutations_.clear();
  }
  start_workers();
}

}  // namespace loom::data
