// ZeRO stage 1: AdamW whose state is sharded over a data-parallel group.
//
// Each parameter group is flattened (in parameter order) into one buffer,
// padded to a multiple of the group size N; rank r owns the contiguous slice
// r of it. A step has two phases:
//
//   reduce_gradients()  the local gradients are reduce-scattered (avg), so
//                       rank r holds only the averaged gradient of its slice;
//   step(lr)            the AdamW update (the same fused kernel as
//                       optim::AdamW) of that slice with its exp_avg /
//                       exp_avg_sq, which exist only for the slice (2/N of
//                       plain AdamW's state per rank); the updated slices are
//                       all-gathered into the parameters.
//
// Communication equals one all-reduce (reduce-scatter + all-gather), so it
// replaces DataParallel: do not wrap the model in DataParallel as well.
// Gradient accumulation needs nothing special: backward passes accumulate
// into .grad locally and the reduce-scatter happens once, at the step.
//
// Clipping: grad_norm() / clip_grad_norm() run after the reduce-scatter (they
// call reduce_gradients() when the step has not yet), on the averaged
// gradient shards: each rank sums the squares of its shard, one all-reduce of
// that scalar gives the norm of the averaged gradient (the padding is zero),
// and each rank scales its own shard. So the norm and the clipping are those
// of DataParallel + optim::clip_grad_norm, up to the summation order, and the
// norm (hence the non-finite-step decision) is the same on every rank.
// Clipping before the reduce-scatter would be wrong: the local gradients'
// norms are not the norm of their average.
//
// Tensor parallelism: with a DP x TP grid, ZeroAdamW shards over the DP group
// the parameters this rank holds (its TP shards). Pass ZeroTensorParallel so
// that the norm sums the squares of the TP-sharded parameters over the TP
// group and counts the replicated ones once (as dist::tp_grad_norm does).
//
// Checkpoints: state_tensors() gathers the shards to rank 0 of the group in
// the unsharded layout of optim::AdamW ("<param>.exp_avg", "<param>.
// exp_avg_sq", shaped like the parameter; collective, the other ranks get an
// empty list); load_state() takes that layout (from a ZeRO run of any size or
// from plain AdamW) and keeps this rank's slice.
//
// Every parameter must have a gradient at the reduce-scatter (an error names
// the missing one). Parameters within a group must share a dtype. Start all
// ranks from the same parameters (broadcast_from_rank0 does it).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "loom/dist/process_group.hpp"
#include "loom/optim/optimizer.hpp"

namespace loom::dist {

struct ZeroTensorParallel {
  ProcessGroupPtr tp;             // null: no tensor parallelism
  std::set<std::string> sharded;  // names of the parameters split over tp
};

class ZeroAdamW : public optim::Optimizer {
 public:
  ZeroAdamW(std::vector<optim::ParamGroup> groups, ProcessGroupPtr dp, optim::AdamWOptions options = {},
            bool broadcast_from_rank0 = true, ZeroTensorParallel tensor_parallel = {});

  // Reduce-scatters (avg) the gradients; a no-op when already done since the
  // last step()/zero_grad(). Collective over the DP group.
  void reduce_gradients();
  // Averages the gradients (if not yet), updates this rank's slice and
  // gathers the parameters. Collective over the DP group.
  void step(double lr) override;
  // Drops the gradients and the reduced shards (a skipped step).
  void zero_grad() override;
  // The norm of the averaged gradient (collective; see the header comment).
  double grad_norm() override;
  double clip_grad_norm(double max_norm) override;

  // Collective over the DP group: rank 0 gets the unsharded state.
  nn::NamedTensors state_tensors() const override;
  void load_state(const nn::NamedTensors& tensors, const nlohmann::json& scalars) override;

  // Elements of optimizer state (exp_avg + exp_avg_sq) held by this rank.
  int64_t state_numel() const;
  ProcessGroup& group() const { return *dp_; }

 private:
  struct Flat {
    size_t group = 0;              // index into groups_
    std::vector<int64_t> offsets;  // of each parameter in the flat buffer
    int64_t numel = 0;             // real elements
    int64_t shard = 0;             // elements per rank: padded / N, padded a multiple of N
    DType dtype = DType::f32;
    Device device = kCPU;          // of every parameter of the group
    TensorOptions options() const { return TensorOptions(dtype).with_device(device); }
    Tensor exp_avg, exp_avg_sq;    // [shard], this rank's slice
    Tensor grad;                   // [shard], the averaged gradient once reduced
    std::vector<bool> tp_sharded;  // per parameter: split over the TP group
  };
  std::string name_of(const Flat& f, size_t index) const;
  std::vector<Flat> flats_;
  ProcessGroupPtr dp_;
  optim::AdamWOptions options_;
  ProcessGroupPtr tp_;
  bool reduced_ = false;
};

}  // namespace loom::dist
