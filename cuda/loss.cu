// The cross-entropy entries of the CUDA table (kernels and floors in
// cross_entropy.cuh).
#include "cross_entropy_args.hpp"
#include "kernels.hpp"
#include "kernels/variants.hpp"
#include "loops.cuh"

namespace loom::cuda {

void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                   const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy");
  on.check(targets, "cross_entropy", "targets");
  on.check(losses, "cross_entropy", "losses");
  on.check(lse, "cross_entropy", "lse");
  cross_entropy_kernels::run_forward(logits, targets, losses, lse, p, on.stream, check_launch,
                                     kernels::variant_on("cross_entropy_pack_rescale"));
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy backward");
  on.check(targets, "cross_entropy backward", "targets");
  on.check(lse, "cross_entropy backward", "lse");
  on.check(row_scale, "cross_entropy backward", "row_scale");
  on.check(grad_logits, "cross_entropy backward", "grad_logits");
  cross_entropy_kernels::run_backward(logits, targets, lse, row_scale, grad_logits, p, on.stream, check_launch);
}

}  // namespace loom::cuda
