// DataParallel: replicate a model on every rank and average its gradients.
//
// At construction the parameters and buffers are broadcast from rank 0, so
// every replica starts identical. Parameters are grouped into buckets in
// reverse creation order (the order backward makes their gradients ready)
// of at most `bucket_cap_bytes` each (a larger tensor gets a bucket alone;
// a dtype change starts a new bucket). With overlap on, the gradient-ready
// hook of each parameter marks it ready, and a bucket whose parameters are
// all ready is packed into its flat buffer and all-reduced (avg)
// asynchronously while backward continues. Buckets are always launched in
// bucket order, so every rank issues the same collectives in the same order
// even if its hooks fired in a different one. finish() launches what is left
// (all of it when overlap is off), waits, and copies the averages back into
// the .grad tensors; call it after the last backward of a step and before
// clipping and the optimizer step.
//
// Gradient accumulation: backward passes run inside a `no_sync()` scope only
// accumulate locally; the backward after it (outside the scope) launches the
// buckets with the accumulated gradients.
//
// A parameter that requires grad but has no .grad at finish() is an error
// naming it (every rank must produce a gradient for every parameter, or the
// replicas would diverge); see `DataParallelOptions::allow_missing_grads`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/dist/process_group.hpp"
#include "loom/nn/module.hpp"

namespace loom::dist {

struct DataParallelOptions {
  int64_t bucket_cap_bytes = 25 << 20;  // 25 MiB, PyTorch's default
  bool overlap = true;                  // launch buckets from the gradient-ready hooks
  bool broadcast_from_rank0 = true;     // copy rank 0's parameters and buffers at construction
  bool allow_missing_grads = false;     // true: parameters without .grad are all-reduced as zeros
};

class DataParallel {
 public:
  DataParallel(nn::Module& model, ProcessGroupPtr group, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Waits for every bucket and writes the averaged gradients into .grad.
  void finish();

  // While a NoSync lives, backward passes do not communicate.
  class NoSync {
   public:
    explicit NoSync(DataParallel& dp);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallel& dp_;
    bool previous_;
  };
  NoSync no_sync() { return NoSync(*this); }

  ProcessGroup& group() { return *group_; }
  // Buckets launched so far in this step (overlap: during backward).
  size_t buckets_launched() const;
  // Parameter names per bucket, in launch order (for tests and logs).
  std::vector<std::vector<std::string>> bucket_names() const;

  struct State;  // shared with the hooks (held weakly by them)

 private:
  nn::Module& model_;
  ProcessGroupPtr group_;
  std::shared_ptr<State> state_;
};

}  // namespace loom::dist
