// Datasets, collate and the DataLoader: the epoch order is a Philox
// permutation of (seed, epoch) alone, batches do not depend on workers or
// prefetch depth, a saved state resumes mid-epoch, shards union to the
// single-process batch, and worker failures reach the consumer without hangs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <numeric>
#include <stdexcept>
#include <thread>

#include <loom/data/dataset.hpp>
#include <loom/data/loader.hpp>
#include <loom/loom.hpp>

using namespace loom;
using namespace loom::data;
using Catch::Contains;

namespace {

using Rows = std::vector<std::vector<int64_t>>;  // example ids, one row per batch

// Example i = {i as i64 [], {2i, 2i+1} as f32 [2]}.
std::shared_ptr<Dataset> counting(int64_t n) {
  Tensor ids = arange(n, DType::i64);
  Tensor pairs = reshape(arange(0.0, 2.0 * static_cast<double>(n), 1.0), {n, 2});
  return std::make_shared<TensorDataset>(std::vector<Tensor>{ids, pairs});
}

// The ids of a batch of `counting`, after checking its second field agrees.
std::vector<int64_t> ids_of(const Batch& batch) {
  REQUIRE(batch.size() == 2);
  REQUIRE(batch[0].dim() == 1);
  const auto ids = batch[0].to_vector<int64_t>();
  REQUIRE(batch[1].shape() == Shape({static_cast<int64_t>(ids.size()), 2}));
  const auto pairs = batch[1].to_vector<float>();
  for (size_t i = 0; i < ids.size(); ++i) {
    REQUIRE(pairs[2 * i] == static_cast<float>(2 * ids[i]));
    REQUIRE(pairs[2 * i + 1] == static_cast<float>(2 * ids[i] + 1));
  }
  return ids;
}

// The rest of the current epoch (the loader ends on the following one).
Rows take_epoch(DataLoader& loader) {
  Rows rows;
  while (auto batch = loader.next()) rows.push_back(ids_of(*batch));
  return rows;
}

Rows take_epochs(DataLoader& loader, int epochs) {
  Rows rows;
  for (int e = 0; e < epochs; ++e) {
    Rows epoch = take_epoch(loader);
    rows.insert(rows.end(), epoch.begin(), epoch.end());
  }
  return rows;
}

LoaderOptions opts(int64_t batch_size, int workers, int prefetch = 4, uint64_t seed = 7) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.num_workers = workers;
  o.prefetch = prefetch;
  o.seed = seed;
  return o;
}

// Runs fn on its own thread; false if it has not returned within `limit`
// (the thread is then abandoned, so a hang fails the test instead of
// blocking the run).
bool finishes_within(std::chrono::seconds limit, std::function<void()> fn) {
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  std::thread([done, fn = std::move(fn)] {
    try {
      fn();
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  }).detach();
  if (future.wait_for(limit) != std::future_status::ready) return false;
  future.get();
  return true;
}

// Throws at one index; optionally slow, to keep workers busy.
class FailingDataset : public Dataset {
 public:
  FailingDataset(int64_t n, int64_t bad, bool std_error = false, int sleep_us = 0)
      : n_(n), bad_(bad), std_error_(std_error), sleep_us_(sleep_us) {}
  int64_t size() const override { return n_; }
  Example get(int64_t index) const override {
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    if (index == bad_) {
      if (std_error_) throw std::runtime_error("disk on fire at " + std::to_string(index));
      LOOM_FAIL("corrupt record ", index);
    }
    return {scalar_tensor(static_cast<double>(index), DType::i64)};
  }

 private:
  int64_t n_, bad_;
  bool std_error_;
  int sleep_us_;
};

}  // namespace

TEST_CASE("epoch_permutation is a permutation of (seed, epoch) alone", "[data][loader]") {
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    auto perm = epoch_permutation(n, 3, 5);
    CHECK(perm == epoch_permutation(n, 3, 5));  // deterministic
    std::sort(perm.begin(), perm.end());
    std::vector<int64_t> iota(static_cast<size_t>(n));
    std::iota(iota.begin(), iota.end(), int64_t{0});
    CHECK(perm == iota);
  }
  const auto base = epoch_permutation(1000, 0, 0);
  CHECK(base != epoch_permutation(1000, 0, 1));               // epochs differ
  CHECK(base != epoch_permutation(1000, 1, 0));               // seeds differ
  CHECK(base != epoch_permutation(1000, uint64_t{1} << 32, 0));  // the seed's high half counts
  CHECK(epoch_permutation(1000, 0, 1) != epoch_permutation(1000, 1, 0));
  // all 6 orders of 3 elements come up about equally often over 6000 epochs
  std::map<std::vector<int64_t>, int> counts;
  for (int64_t e = 0; e < 6000; ++e) ++counts[epoch_permutation(3, 11, e)];
  CHECK(counts.size() == 6);
  for (const auto& [perm, count] : counts) CHECK((count > 850 && count < 1150));
  CHECK_THROWS_WITH(epoch_permutation(5, 0, -1), Contains("epoch -1"));
}

TEST_CASE("batch k of an epoch is the k-th slice of the permutation, and shuffle=false keeps index order", "[data][loader]") {
  const int64_t n = 50, b = 8;
  DataLoader loader(counting(n), opts(b, 0));
  CHECK(loader.batches_per_epoch() == 6);
  for (int64_t e = 0; e < 2; ++e) {
    const auto perm = epoch_permutation(n, 7, e);
    CHECK(loader.epoch() == e);
    const Rows rows = take_epoch(loader);
    REQUIRE(rows.size() == 6);
    for (int64_t k = 0; k < 6; ++k)
      CHECK(rows[static_cast<size_t>(k)] == std::vector<int64_t>(perm.begin() + k * b, perm.begin() + (k + 1) * b));
  }
  CHECK(loader.epoch() == 2);
  CHECK(loader.position() == 0);

  LoaderOptions o = opts(4, 0);
  o.shuffle = false;
  DataLoader ordered(counting(10), o);
  CHECK(take_epoch(ordered) == Rows{{0, 1, 2, 3}, {4, 5, 6, 7}});
  CHECK(take_epoch(ordered) == Rows{{0, 1, 2, 3}, {4, 5, 6, 7}});
}

TEST_CASE("batches do not depend on num_workers or prefetch depth", "[data][loader]") {
  for (bool drop_last : {true, false}) {
    LoaderOptions ref_opts = opts(8, 0);
    ref_opts.drop_last = drop_last;
    DataLoader ref_loader(counting(103), ref_opts);
    const Rows reference = take_epochs(ref_loader, 3);
    REQUIRE(reference.size() == (drop_last ? 36u : 39u));
    for (auto [workers, prefetch] : std::vector<std::pair<int, int>>{{1, 1}, {1, 4}, {3, 1}, {3, 2}, {3, 16}, {2, 64}}) {
      INFO("num_workers " << workers << ", prefetch " << prefetch << ", drop_last " << drop_last);
      LoaderOptions o = opts(8, workers, prefetch);
      o.drop_last = drop_last;
      DataLoader loader(counting(103), o);
      CHECK(take_epochs(loader, 3) == reference);
      CHECK(loader.epoch() == 3);
    }
  }
}

TEST_CASE("drop_last decides whether the partial last batch is kept", "[data][loader]") {
  LoaderOptions o = opts(4, 2);
  DataLoader dropped(counting(10), o);
  CHECK(dropped.batches_per_epoch() == 2);
  Rows rows = take_epoch(dropped);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].size() == 4);
  CHECK(rows[1].size() == 4);

  o.drop_last = false;
  DataLoader kept(counting(10), o);
  CHECK(kept.batches_per_epoch() == 3);
  for (int e = 0; e < 2; ++e) {
    rows = take_epoch(kept);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].size() == 4);
    CHECK(rows[1].size() == 4);
    CHECK(rows[2].size() == 2);
    std::vector<int64_t> all;
    for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
    std::sort(all.begin(), all.end());
    CHECK(all == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});  // each example once per epoch
  }

  // a dataset smaller than one batch: no batches with drop_last, one without
  DataLoader none(counting(3), opts(4, 2));
  CHECK(none.batches_per_epoch() == 0);
  CHECK_FALSE(none.next().has_value());
  CHECK(none.epoch() == 1);
  o.batch_size = 4;
  DataLoader one(counting(3), o);
  CHECK(take_epoch(one).size() == 1);
}

TEST_CASE("a saved state resumes with exactly the batches the original would yield", "[data][loader]") {
  const int64_t n = 61;
  DataLoader original(counting(n), opts(5, 2, 3));
  const int64_t per_epoch = original.batches_per_epoch();
  REQUIRE(per_epoch == 12);
  // the full stream of 3 epochs, with an end-of-epoch marker after each
  Rows stream;
  for (int e = 0; e < 3; ++e) {
    Rows rows = take_epoch(original);
    stream.insert(stream.end(), rows.begin(), rows.end());
    stream.push_back({-1});
  }
  auto tail = [&](const Rows& rows, int64_t epoch, int64_t batch) {
    return Rows(rows.begin() + epoch * (per_epoch + 1) + batch, rows.end());
  };
  auto drain = [](DataLoader& loader, int64_t epochs_left) {
    Rows rows;
    while (loader.epoch() < epochs_left) {
      auto batch = loader.next();
      rows.push_back(batch ? ids_of(*batch) : std::vector<int64_t>{-1});
    }
    return rows;
  };

  for (auto [epoch, batch] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {0, 5}, {1, 11}, {1, 12}, {2, 3}}) {
    INFO("resume at epoch " << epoch << " batch " << batch);
    // advance a fresh loader to (epoch, batch) and save it
    DataLoader first(counting(n), opts(5, 3, 2));
    while (first.epoch() < epoch || first.position() < batch) first.next();
    const nlohmann::json saved = first.state();
    CHECK(saved["epoch"] == epoch);
    CHECK(saved["batch"] == batch);
    CHECK(saved["seed"] == 7);
    // resume into loaders that differ in workers, prefetch and option seed
    for (int workers : {0, 1, 4}) {
      DataLoader resumed(counting(n), opts(5, workers, 1 + workers, /*seed=*/999));
      resumed.next();  // it has already prefetched and moved on: load_state resets that
      resumed.load_state(nlohmann::json::parse(saved.dump()));
      CHECK(resumed.epoch() == epoch);
      CHECK(resumed.position() == batch);
      CHECK(drain(resumed, 3) == tail(stream, epoch, batch));
    }
    CHECK(drain(first, 3) == tail(stream, epoch, batch));
  }
}

TEST_CASE("load_state and the options are validated with errors naming the key", "[data][loader]") {
  DataLoader loader(counting(20), opts(4, 1));
  CHECK_THROWS_WITH(loader.load_state(nlohmann::json::array()), Contains("load_state") && Contains("object"));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", 0}, {"seed", 0}}), Contains("missing key 'batch'"));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", 0}, {"batch", 0}}), Contains("missing key 'seed'"));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", "one"}, {"batch", 0}, {"seed", 0}}),
                    Contains("'epoch'") && Contains("\"one\""));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", 0}, {"batch", -2}, {"seed", 0}}), Contains("'batch'") && Contains("-2"));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", 0}, {"batch", 1.5}, {"seed", 0}}), Contains("'batch'"));
  CHECK_THROWS_WITH(loader.load_state({{"epoch", 0}, {"batch", 6}, {"seed", 0}}),
                    Contains("'batch' is 6") && Contains("5 batches"));
  // a refused state leaves the loader as it was
  CHECK(take_epoch(loader).size() == 5);

  CHECK_THROWS_WITH(DataLoader(nullptr, {}), Contains("null"));
  CHECK_THROWS_WITH(DataLoader(counting(4), opts(0, 1)), Contains("batch_size") && Contains("0"));
  CHECK_THROWS_WITH(DataLoader(counting(4), opts(1, -1)), Contains("num_workers") && Contains("-1"));
  CHECK_THROWS_WITH(DataLoader(counting(4), opts(1, 1, 0)), Contains("prefetch") && Contains("0"));
  LoaderOptions o = opts(1, 1);
  o.world_size = 2;
  o.rank = 2;
  CHECK_THROWS_WITH(DataLoader(counting(4), o), Contains("rank 2") && Contains("world_size 2"));
}

TEST_CASE("shards over world_size ranks union to the single-process batch", "[data][loader]") {
  const int64_t n = 53, b = 4;
  for (int world : {2, 3}) {
    for (bool drop_last : {true, false}) {
      INFO("world_size " << world << ", drop_last " << drop_last);
      LoaderOptions single_opts = opts(b * world, 0);
      single_opts.drop_last = drop_last;
      DataLoader single(counting(n), single_opts);
      const Rows expected = take_epochs(single, 2);
      std::vector<Rows> shards;
      for (int rank = 0; rank < world; ++rank) {
        LoaderOptions o = opts(b, rank % 2 == 0 ? 2 : 0);
        o.drop_last = drop_last;
        o.rank = rank;
        o.world_size = world;
        DataLoader loader(counting(n), o);
        CHECK(loader.batches_per_epoch() == single.batches_per_epoch());
        shards.push_back(take_epochs(loader, 2));
      }
      REQUIRE(shards[0].size() == expected.size());
      for (size_t k = 0; k < expected.size(); ++k) {
        std::vector<int64_t> joined;
        for (int rank = 0; rank < world; ++rank) {
          const auto& part = shards[static_cast<size_t>(rank)][k];
          CHECK(!part.empty());
          if (expected[k].size() == static_cast<size_t>(b * world)) CHECK(part.size() == static_cast<size_t>(b));
          joined.insert(joined.end(), part.begin(), part.end());
        }
        CHECK(joined == expected[k]);
      }
    }
  }
  // 50 = 4 * 12 + 2: the last global batch of 2 cannot feed 3 ranks
  LoaderOptions o = opts(4, 0);
  o.drop_last = false;
  o.world_size = 3;
  CHECK_THROWS_WITH(DataLoader(counting(50), o), Contains("2 examples") && Contains("world_size 3"));
}

TEST_CASE("grouped_order puts g examples of one key in each group while the key lasts", "[data][loader]") {
  const int64_t n = 103, g = 4;
  std::vector<int64_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = (i * 7) % 9;  // 9 keys: five of 11 examples, four of 12
  const auto order = epoch_permutation(n, 3, 0);
  const auto out = grouped_order(order, keys, g);

  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), int64_t{0});
  REQUIRE(sorted == all);

  std::vector<int64_t> rank_in_order(n);  // where each example stands in `order`
  for (int64_t p = 0; p < n; ++p) rank_in_order[order[p]] = p;
  std::map<int64_t, int64_t> left;  // examples of each key not yet placed
  for (int64_t k : keys) ++left[k];
  int64_t mixed = 0;
  for (int64_t start = 0; start < n; start += g) {
    const int64_t end = std::min(n, start + g);
    const int64_t key = keys[out[start]];
    // the opener is the first example of `order` not placed before it
    for (int64_t p = 0; p < rank_in_order[out[start]]; ++p)
      CHECK(std::find(out.begin(), out.begin() + start, order[p]) != out.begin() + start);
    int64_t same = 0;
    while (start + same < end && keys[out[start + same]] == key) ++same;
    // the opener's key fills the group, or gives all it had left
    CHECK((same == end - start || same == left[key]));
    if (same < end - start) ++mixed;
    // a top-up is the first example of `order` not placed before it
    for (int64_t p = start + same; p < end; ++p)
      for (int64_t r = 0; r < rank_in_order[out[p]]; ++r)
        CHECK(std::find(out.begin(), out.begin() + p, order[r]) != out.begin() + p);
    for (int64_t p = start; p < end; ++p) --left[keys[out[p]]];
    // members of one key keep their order
    for (int64_t p = start + 1; p < start + same; ++p)
      CHECK(rank_in_order[out[p - 1]] < rank_in_order[out[p]]);
  }
  CHECK(mixed > 0);  // the case of a key running out was reached
  CHECK(mixed <= 9);  // at most once per key, when it runs out

  // keys whose counts are multiples of g: every group is pure
  std::vector<int64_t> even(96);
  for (int64_t i = 0; i < 96; ++i) even[i] = i % 6;  // 16 of each
  const auto pure = grouped_order(epoch_permutation(96, 5, 1), even, g);
  for (int64_t start = 0; start < 96; start += g)
    for (int64_t p = start; p < start + g; ++p) CHECK(even[pure[p]] == even[pure[start]]);

  CHECK(grouped_order(order, keys, 1) == order);
  CHECK_THROWS_WITH(grouped_order(order, std::vector<int64_t>(5), g), Contains("5 keys") && Contains("103 examples"));
  std::vector<int64_t> twice = order;
  twice[1] = twice[0];
  CHECK_THROWS_WITH(grouped_order(twice, keys, g), Contains("not a permutation"));
}

TEST_CASE("a grouped loader hands every rank whole groups, in the same order as one process", "[data][loader]") {
  const int64_t n = 96, g = 4;
  std::vector<int64_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = i % 8;  // 12 of each: all groups pure
  LoaderOptions single_opts = opts(16, 0);
  single_opts.group_size = g;
  single_opts.group_keys = keys;
  DataLoader single(counting(n), single_opts);
  const Rows expected = take_epochs(single, 2);
  for (const auto& batch : expected)
    for (size_t start = 0; start < batch.size(); start += g)
      for (size_t p = start; p < start + g; ++p) CHECK(keys[batch[p]] == keys[batch[start]]);
  // two epochs group differently
  CHECK(expected[0] != expected[expected.size() / 2]);

  Rows joined(expected.size());
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions o = opts(8, 1);
    o.group_size = g;
    o.group_keys = keys;
    o.rank = rank;
    o.world_size = 2;
    DataLoader loader(counting(n), o);
    const Rows shard = take_epochs(loader, 2);
    REQUIRE(shard.size() == expected.size());
    for (size_t k = 0; k < shard.size(); ++k) joined[k].insert(joined[k].end(), shard[k].begin(), shard[k].end());
  }
  CHECK(joined == expected);

  LoaderOptions o = opts(6, 0);
  o.group_size = g;
  o.group_keys = keys;
  CHECK_THROWS_WITH(DataLoader(counting(n), o), Contains("batch_size 6") && Contains("group_size 4"));
  o = opts(8, 0);
  o.group_size = g;
  o.group_keys = {1, 2, 3};
  CHECK_THROWS_WITH(DataLoader(counting(n), o), Contains("group_keys has 3 keys") && Contains("96 examples"));
  o.group_size = 0;
  CHECK_THROWS_WITH(DataLoader(counting(n), o), Contains("group_size must be >= 1"));
}

TEST_CASE("a failing get reaches next() as a loom::Error at its batch, then loading goes on", "[data][loader]") {
  const int64_t n = 40, b = 4, bad = 17;
  const auto perm = epoch_permutation(n, 7, 0);
  const int64_t bad_batch = (std::find(perm.begin(), perm.end(), bad) - perm.begin()) / b;
  for (int workers : {0, 1, 3}) {
    for (bool std_error : {false, true}) {
      INFO("num_workers " << workers << ", std::exception " << std_error);
      auto loader = std::make_shared<DataLoader>(std::make_shared<FailingDataset>(n, bad, std_error), opts(b, workers, 3));
      for (int64_t k = 0; k < bad_batch; ++k) REQUIRE(loader->next().has_value());
      CHECK_THROWS_AS(loader->next(), Error);
      CHECK(loader->position() == bad_batch + 1);
      if (bad_batch + 1 < loader->batches_per_epoch()) {
        auto after = loader->next();
        REQUIRE(after.has_value());
        CHECK((*after)[0].to_vector<int64_t>() ==
              std::vector<int64_t>(perm.begin() + (bad_batch + 1) * b, perm.begin() + (bad_batch + 2) * b));
      }
      // the message: the same failure again, one epoch later
      while (loader->epoch() == 0) loader->next();
      const auto perm1 = epoch_permutation(n, 7, 1);
      const int64_t bad_batch1 = (std::find(perm1.begin(), perm1.end(), bad) - perm1.begin()) / b;
      for (int64_t k = 0; k < bad_batch1; ++k) REQUIRE(loader->next().has_value());
      CHECK_THROWS_WITH(loader->next(), Contains("batch " + std::to_string(bad_batch1) + " of epoch 1") &&
                                            Contains(std_error ? "disk on fire at 17" : "corrupt record 17"));
      // destroyed with failed and prefetched batches outstanding
      CHECK(finishes_within(std::chrono::seconds(30), [loader]() mutable { loader.reset(); }));
    }
  }
}

TEST_CASE("a loader is destroyed mid-epoch without hanging", "[data][loader]") {
  for (int workers : {1, 4}) {
    INFO("num_workers " << workers);
    // slow examples keep every worker busy when the destructor runs
    auto slow = std::make_shared<FailingDataset>(400, -1, false, /*sleep_us=*/200);
    auto fresh = std::make_shared<DataLoader>(slow, opts(8, workers, 8));
    CHECK(finishes_within(std::chrono::seconds(30), [fresh]() mutable { fresh.reset(); }));
    auto started = std::make_shared<DataLoader>(slow, opts(8, workers, 8));
    REQUIRE(started->next().has_value());
    REQUIRE(started->next().has_value());
    CHECK(finishes_within(std::chrono::seconds(30), [started]() mutable { started.reset(); }));
  }
}

TEST_CASE("TensorDataset gives row i of each tensor and names mismatched sizes", "[data][dataset]") {
  TensorDataset ds({arange(0.0, 6.0, 1.0).reshape({3, 2}), arange(3, DType::i64)});
  CHECK(ds.size() == 3);
  const Example ex = ds.get(1);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].to_vector<float>() == std::vector<float>{2, 3});
  CHECK(ex[1].item<int64_t>() == 1);
  CHECK_THROWS_WITH(ds.get(3), Contains("index 3") && Contains("3 examples"));
  CHECK_THROWS_WITH(TensorDataset({zeros({5, 2}), zeros({4})}),
                    Contains("TensorDataset") && Contains("[4]") && Contains("[5, 2]"));
  CHECK_THROWS_WITH(TensorDataset({zeros({5}), scalar_tensor(1.0)}), Contains("tensor 1") && Contains("scalar"));
  CHECK_THROWS_WITH(TensorDataset({}), Contains("at least one"));
  // examples carry no autograd history even when the source tensors need grad
  TensorDataset grads({ones({4, 3}).requires_grad_()});
  CHECK_FALSE(grads.get(0)[0].requires_grad());
}

TEST_CASE("collate stacks each field and names the field and shapes that differ", "[data][dataset]") {
  const std::vector<Example> examples{{ones({2, 3}), scalar_tensor(1, DType::i64)},
                                      {zeros({2, 3}), scalar_tensor(4, DType::i64)}};
  const Batch batch = collate(examples);
  REQUIRE(batch.size() == 2);
  CHECK(batch[0].shape() == Shape({2, 2, 3}));
  CHECK(batch[1].shape() == Shape({2}));
  CHECK(batch[1].to_vector<int64_t>() == std::vector<int64_t>{1, 4});
  CHECK(batch[0].to_vector<float>()[0] == 1.0f);
  CHECK(batch[0].to_vector<float>()[6] == 0.0f);

  CHECK_THROWS_WITH(collate({{ones({2, 3}), ones({1})}, {ones({2, 3}), ones({2})}}),
                    Contains("collate") && Contains("field 1") && Contains("[1]") && Contains("[2]"));
  CHECK_THROWS_WITH(collate({{ones({2, 3})}, {ones({2, 4})}}),
                    Contains("field 0") && Contains("[2, 3]") && Contains("[2, 4]") && Contains("example 1"));
  CHECK_THROWS_WITH(collate({{ones({2})}, {ones({2}, DType::f64)}}), Contains("field 0") && Contains("f64"));
  CHECK_THROWS_WITH(collate({{ones({2}), ones({2})}, {ones({2})}}), Contains("example 1 has 1 fields"));
  CHECK_THROWS_WITH(collate({}), Contains("at least one"));
  // under grad mode, collate still records nothing
  const Batch no_graph = collate({{ones({2}).requires_grad_()}, {ones({2}).requires_grad_()}});
  CHECK_FALSE(no_graph[0].requires_grad());
}

TEST_CASE("fashion_mnist loads 60000 + 10000 examples of 1x28x28 images with labels 0 to 9",
          "[data][dataset][fashion]") {
  // No skipping: a machine without the dataset fails here with the package name.
  CHECK_THROWS_WITH(fashion_mnist("/nonexistent/fashion", true),
                    Contains("train-images-idx3-ubyte.gz") && Contains("dataset-fashion-mnist"));

  const auto train = fashion_mnist(kFashionMnistDir, true);
  const auto test = fashion_mnist(kFashionMnistDir, false);
  REQUIRE(train->size() == 60000);
  REQUIRE(test->size() == 10000);
  const Example first = train->get(0);
  REQUIRE(first.size() == 2);
  CHECK(first[0].shape() == Shape({1, 28, 28}));
  CHECK(first[0].dtype() == DType::f32);
  CHECK(first[1].shape() == Shape{});
  CHECK(first[1].dtype() == DType::i64);

  // every test label, and a sample of training images
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < test->size(); ++i) {
    const int64_t label = test->get(i)[1].item<int64_t>();
    REQUIRE((label >= 0 && label < 10));
    ++per_class[static_cast<size_t>(label)];
  }
  CHECK(per_class == std::vector<int64_t>(10, 1000));
  const auto normalized = fashion_mnist(kFashionMnistDir, true, /*normalize=*/true);
  double sum = 0, sum_sq = 0, nsum = 0, nsum_sq = 0, worst = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < train->size(); i += 37) {
    const auto pixels = train->get(i)[0].to_vector<float>();
    const auto npixels = normalized->get(i)[0].to_vector<float>();
    const auto [lo, hi] = std::minmax_element(pixels.begin(), pixels.end());
    REQUIRE(*lo >= 0.0f);
    REQUIRE(*hi <= 1.0f);
    for (size_t p = 0; p < pixels.size(); ++p) {
      worst = std::max(worst, std::abs(double{npixels[p]} - (pixels[p] - kFashionMnistMean) / kFashionMnistStd));
      sum += pixels[p];
      sum_sq += double{pixels[p]} * pixels[p];
      nsum += npixels[p];
      nsum_sq += double{npixels[p]} * npixels[p];
    }
    count += static_cast<int64_t>(pixels.size());
  }
  CHECK(worst < 1e-5);  // normalize = (x - mean) / std
  const double mean = sum / count, sd = std::sqrt(sum_sq / count - mean * mean);
  CHECK(mean == Approx(0.2860).margin(0.01));
  CHECK(sd == Approx(0.3530).margin(0.01));
  const double nmean = nsum / count;
  CHECK(nmean == Approx(0.0).margin(0.03));
  CHECK(std::sqrt(nsum_sq / count - nmean * nmean) == Approx(1.0).margin(0.03));

  // through the loader, with workers
  DataLoader loader(test, opts(100, 2));
  CHECK(loader.batches_per_epoch() == 100);
  const auto batch = loader.next();
  REQUIRE(batch.has_value());
  CHECK((*batch)[0].shape() == Shape({100, 1, 28, 28}));
  CHECK((*batch)[1].shape() == Shape({100}));
  CHECK((*batch)[1].dtype() == DType::i64);
}
