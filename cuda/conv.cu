// The im2col entries of the CUDA table (kernels and floors in conv_kernels.cuh).
#include "conv_kernels.cuh"
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

void unfold2d(const Tensor& x, const Tensor& cols, const Window2d& w) {
  OnDevice on(cols, "unfold2d");
  on.check(x, "unfold2d", "x");
  conv_kernels::run_unfold(x, cols, w, on.stream, check_launch);
}

void fold2d(const Tensor& cols, const Tensor& x_grad, const Window2d& w) {
  OnDevice on(x_grad, "fold2d");
  on.check(cols, "fold2d", "cols");
  conv_kernels::run_fold(cols, x_grad, w, on.stream, check_launch);
}

}  // namespace loom::cuda
