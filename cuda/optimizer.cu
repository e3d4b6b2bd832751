// The one-tensor AdamW entry of the CUDA table (kernel and floor in adamw.cuh).
#include "adamw.cuh"
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

void adamw(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
           const Tensor& half_copy, const AdamWStep& s) {
  OnDevice on(param, "adamw");
  on.check(grad, "adamw", "grad");
  on.check(exp_avg, "adamw", "exp_avg");
  on.check(exp_avg_sq, "adamw", "exp_avg_sq");
  if (half_copy.defined()) on.check(half_copy, "adamw", "half_copy");
  adamw_kernels::run(param, grad, exp_avg, exp_avg_sq, half_copy, s, on.stream, check_launch);
}

}  // namespace loom::cuda
