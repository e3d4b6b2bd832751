// The cross-entropy entries of the CUDA table (kernels and floors in
// cross_entropy.cuh).
#include "cross_entropy_args.hpp"
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy");
  on.check(targets, "cross_entropy", "targets");
  on.check(losses, "cross_entropy", "losses");
  cross_entropy_kernels::run_forward(logits, targets, losses, p, on.stream, check_launch);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy backward");
  on.check(targets, "cross_entropy backward", "targets");
  on.check(row_scale, "cross_entropy backward", "row_scale");
  on.check(grad_logits, "cross_entropy backward", "grad_logits");
  cross_entropy_kernels::run_backward(logits, targets, row_scale, grad_logits, p, on.stream, check_launch);
}

}  // namespace loom::cuda
