// ZeRO stage 1: AdamW whose state is sharded over a data-parallel group.
//
// Each parameter group is flattened (in parameter order) into one buffer,
// padded to a multiple of the group size N; rank r owns the contiguous slice
// r of it. step(): the local gradients are reduce-scattered (avg), so rank r
// receives only the averaged gradient of its slice; it applies the AdamW
// update (the same fused kernel as optim::AdamW) to its slice with its
// exp_avg / exp_avg_sq, which exist only for that slice (2/N of plain AdamW's
// state per rank); the updated slices are all-gathered and copied back into
// the parameters. Communication equals one all-reduce (reduce-scatter +
// all-gather), so it replaces DataParallel: do not wrap the model in
// DataParallel as well.
//
// Like DataParallel, every parameter must have a gradient at step() (an error
// names the missing one). Parameters within a group must share a dtype.
// Start all ranks from the same parameters (broadcast_from_rank0 does it).
#pragma once

#include <string>
#include <vector>

#include "loom/dist/process_group.hpp"
#include "loom/optim/optimizer.hpp"

namespace loom::dist {

class ZeroAdamW {
 public:
  ZeroAdamW(std::vector<optim::ParamGroup> groups, ProcessGroupPtr dp, optim::AdamWOptions options = {},
            bool broadcast_from_rank0 = true);
  // Averages the gradients over the group, updates this rank's slice and
  // gathers the parameters. Collective over the DP group.
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  // Elements of optimizer state (exp_avg + exp_avg_sq) held by this rank.
  int64_t state_numel() const;

 private:
  struct Flat {
    optim::ParamGroup group;
    std::vector<int64_t> offsets;  // of each parameter in the flat buffer
    int64_t numel = 0;             // real elements
    int64_t padded = 0;            // a multiple of the DP size
    DType dtype = DType::f32;
    Tensor exp_avg, exp_avg_sq;    // [padded / N], this rank's slice
  };
  std::vector<Flat> flats_;
  ProcessGroupPtr dp_;
  optim::AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace loom::dist
