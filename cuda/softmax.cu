// The softmax entries of the CUDA table (kernels and floors in softmax.cuh).
#include "kernels.hpp"
#include "loops.cuh"
#include "softmax_args.hpp"

namespace loom::cuda {

void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  OnDevice on(out, "softmax");
  on.check(x, "softmax", "x");
  softmax_kernels::run_forward(x, out, outer, r, inner, log, on.stream, check_launch);
}

void softmax_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                      int64_t inner, bool log) {
  OnDevice on(grad_in, "softmax backward");
  on.check(grad, "softmax backward", "grad");
  on.check(y, "softmax backward", "y");
  softmax_kernels::run_backward(grad, y, grad_in, outer, r, inner, log, on.stream, check_launch);
}

}  // namespace loom::cuda
