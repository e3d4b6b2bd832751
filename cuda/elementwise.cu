// The pointwise entries of the CUDA table: unary ops and their derivatives,
// binary ops, comparisons. Dense, aligned f32 and bf16 operands take the
// 16-byte packed kernels (pointwise_packed.cuh), everything else the strided
// ones (pointwise_strided.cuh); both share the arithmetic of
// pointwise_math.cuh, and pointwise_args.hpp picks between them.
#include "kernels.hpp"
#include "loops.cuh"
#include "pointwise_args.hpp"

namespace loom::cuda {

void unary(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  const char* name = kernels::op_name(op);
  OnDevice on(out, name);
  on.check(x, name, "x");
  pointwise::run_unary(op, x, out, p, on.stream, check_launch);
}

void unary_backward(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                    const UnaryParams& p) {
  const char* name = kernels::op_name(op);
  OnDevice on(grad_in, name);
  on.check(grad, name, "grad");
  on.check(x, name, "x");
  on.check(y, name, "y");
  pointwise::run_unary_backward(op, grad, x, y, grad_in, p, on.stream, check_launch);
}

void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = kernels::op_name(op);
  OnDevice on(out, name);
  on.check(a, name, "a");
  on.check(b, name, "b");
  pointwise::run_binary(op, a, b, out, on.stream, check_launch);
}

void compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out) {
  OnDevice on(out, "compare");
  on.check(a, "compare", "a");
  on.check(b, "compare", "b");
  pointwise::run_compare(op, a, b, out, on.stream, check_launch);
}

}  // namespace loom::cuda
