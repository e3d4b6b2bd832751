// The norm entries of the CUDA table: LayerNorm and RMSNorm, plain or fused
// with the residual add before them (kernels and floors in norm.cuh).
#include "kernels.hpp"
#include "kernels/variants.hpp"
#include "loops.cuh"
#include "norm_args.hpp"

namespace loom::cuda {

void norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
          const Tensor& sum, const Tensor& mean, const Tensor& rstd, const NormShape& s) {
  const char* op = norm_kernels::op_name(s, false);
  OnDevice on(out, op);
  for (const Tensor* t : {&x, &mean, &rstd}) on.check(*t, op, "x/mean/rstd");
  for (const Tensor* t : {&residual, &sum, &weight, &bias})
    if (t->defined()) on.check(*t, op, "residual/sum/weight/bias");
  norm_kernels::run_forward(x, residual, weight, bias, out, sum, mean, rstd, s, on.stream, check_launch,
                            kernels::variant_on("norm_forward_prefetch"));
}

void norm_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                   const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                   const Tensor& grad_w, const Tensor& grad_b, const NormShape& s) {
  const char* op = norm_kernels::op_name(s, true);
  OnDevice on(x, op);
  for (const Tensor* t : {&grad, &mean, &rstd}) on.check(*t, op, "grad/mean/rstd");
  for (const Tensor* t : {&grad_sum, &weight, &grad_x, &grad_x_half, &grad_w, &grad_b})
    if (t->defined()) on.check(*t, op, "grad_sum/weight/grad_x/grad_x_half/grad_w/grad_b");
  norm_kernels::run_backward(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_x_half, grad_w, grad_b, s,
                             on.stream, check_launch, kernels::variant_on("norm_backward_shared_sums"));
}

}  // namespace loom::cuda
