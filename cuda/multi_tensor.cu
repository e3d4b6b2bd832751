// The multi-tensor entries of the CUDA table (kernels in multi_tensor.cuh,
// which gives their floors): AdamW over a parameter group and the sum of
// squares behind the gradient norm, one launch per batch of tensors.
#include "kernels.hpp"
#include "loops.cuh"
#include "multi_tensor_args.hpp"

namespace loom::cuda {

bool adamw_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                 const std::vector<Tensor>& half_copies, const AdamWStep& s) {
  if (params.empty()) return false;
  OnDevice on(params.front(), "adamw");
  return multi_tensor::adamw(params, grads, exp_avgs, exp_avg_sqs, half_copies, s, on.stream, check_launch);
}

bool sum_squares(const std::vector<Tensor>& tensors, double* out) {
  if (tensors.empty()) return false;
  OnDevice on(tensors.front(), "sum of squares");
  return multi_tensor::sum_squares(tensors, out, on.stream, check_launch);
}

}  // namespace loom::cuda
