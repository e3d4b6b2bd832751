// DataLoader: deterministic, resumable mini-batches with background prefetch.
//
// Order. The examples of epoch e are visited in the order epoch_permutation
// (n, seed, e): a Fisher-Yates shuffle driven by Philox on counters derived
// from (seed, e) alone, so the batches never depend on the number of workers,
// the prefetch depth or timing. Batch k of an epoch is perm[k*B, (k+1)*B).
//
// Epochs. next() returns the batches of the current epoch in order, then
// std::nullopt once; the call after that starts the next epoch.
//
// Prefetch. With num_workers > 0, that many threads build the batches ahead of
// the consumer (at most `prefetch` built or in flight, across epoch ends
// too); next() hands them out strictly in order. num_workers = 0 builds each
// batch inside next(). Workers never record autograd history. An exception
// thrown while building a batch (e.g. by Dataset::get) reaches the consumer
// as a loom::Error from the next() that would have returned that batch,
// naming the epoch and batch index; that batch counts as consumed, and the
// following next() continues with the next batch. The destructor stops and
// joins the workers (a batch being built is finished first).
//
// Resume. state() is {"epoch", "batch" (the index of the batch next() returns
// next, within the epoch; batches_per_epoch() once the epoch is used up),
// "seed"}. load_state(state) makes this loader yield exactly the batches the
// saved one would have yielded from that point on; it needs the same dataset
// size, batch_size, drop_last, shuffle and sharding (the seed is taken from
// the state).
//
// Sharding (data parallel). With world_size W > 1, the epoch is cut into
// global batches of G = batch_size * W consecutive examples of the same
// permutation (every rank must use the same seed), and rank r takes slice r
// of each: examples [r*B, (r+1)*B) of a full global batch. The union over
// ranks of their batch k is exactly batch k of a single-process loader with
// batch_size G. With drop_last = false the last, partial global batch of m
// examples is split as evenly as possible (rank r takes [r*m/W, (r+1)*m/W));
// the constructor refuses the case 0 < m < W, which would leave a rank empty.
// Every rank sees the same batches_per_epoch().
//
// Groups (hard negatives for contrastive learning). With group_size g > 1
// and one key per example in group_keys, the epoch's order is grouped_order
// (permutation, keys, g): consecutive runs of g examples share a key wherever
// that key has enough examples left. batch_size must be a multiple of g, so a
// group never straddles two batches or two ranks of a full global batch (the
// last, partial one that drop_last = false keeps may split a group between
// ranks). A contrastive loss then meets, for every example, g - 1 negatives
// that agree with it on whatever the key encodes and differ in the rest.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "loom/data/dataset.hpp"

namespace loom::data {

struct LoaderOptions {
  int64_t batch_size = 32;  // per rank
  bool shuffle = true;      // false: examples in index order every epoch
  bool drop_last = true;    // drop the last global batch when it is partial
  uint64_t seed = 0;
  int num_workers = 2;      // 0: build batches synchronously in next()
  int prefetch = 4;         // batches built or in flight ahead of the consumer (>= 1 with workers)
  int rank = 0;             // sharding: this process's rank in [0, world_size)
  int world_size = 1;
  int64_t group_size = 1;              // > 1: examples come in groups of this many sharing a key
  std::vector<int64_t> group_keys;     // one key per example (used when group_size > 1)
};

// The visiting order of n examples in `epoch`: a permutation of [0, n) that
// depends only on (n, seed, epoch).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// `order` regrouped: walking it, each example not yet placed opens a group and
// pulls the next group_size - 1 unplaced examples of its key (in `order`'s
// order); a key with too few left is topped up with the next unplaced
// examples of any key, so group k always fills positions [k*g, (k+1)*g).
// Every example appears once; the result depends only on the arguments.
std::vector<int64_t> grouped_order(const std::vector<int64_t>& order, const std::vector<int64_t>& keys,
                                   int64_t group_size);

class DataLoader {
 public:
  DataLoader(std::shared_ptr<Dataset> dataset, LoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch of the epoch, or std::nullopt at its end (then the next
  // call starts the next epoch).
  std::optional<Batch> next();

  int64_t epoch() const { return epoch_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t position() const { return batch_; }  // index of the batch next() returns next
  const LoaderOptions& options() const { return options_; }

  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

  // The dataset indices of this rank's batch `batch` of `epoch`.
  std::vector<int64_t> batch_indices(int64_t epoch, int64_t batch) const;

 private:
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  Batch build(int64_t epoch, int64_t batch) const;
  std::shared_ptr<const std::vector<int64_t>> permutation(int64_t epoch) const;
  void start_workers();
  void stop_workers();
  void worker_loop();

  std::shared_ptr<Dataset> dataset_;
  LoaderOptions options_;
  int64_t batches_per_epoch_ = 0;
  int64_t epoch_ = 0;  // consumer position
  int64_t batch_ = 0;

  // Prefetch state, guarded by mutex_. Jobs are numbered by their global
  // batch index g = epoch * batches_per_epoch + batch; workers claim them in
  // order from next_claim_, the consumer takes next_consume_.
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // workers: room to claim, or stop
  std::condition_variable ready_cv_;  // consumer: a slot was filled
  bool stop_ = false;
  int64_t next_claim_ = 0;
  int64_t next_consume_ = 0;
  std::map<int64_t, Slot> ready_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> permutations_;  // by epoch
  std::vector<std::thread> workers_;
};

}  // namespace loom::data
