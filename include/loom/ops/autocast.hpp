// Mixed precision in the manner of torch.autocast.
//
// Inside an AutocastGuard(DType::bf16):
//   - matmul, linear, conv1d/conv2d and attention's products take bf16
//     operands (f32 ones are cast; f64 ones are left alone) and give bf16
//     results; the products accumulate in f32;
//   - softmax, log_softmax, layer_norm, rms_norm and cross_entropy compute in
//     f32 whatever their input's precision (and return f32; the fused
//     residual norms may return `normed` in bf16 when asked, for the product
//     it feeds: loom/ops/nn.hpp);
//   - every other op runs in its inputs' dtype; the arithmetic binary ops
//     (add, sub, mul, div, pow, maximum, minimum) compute operands of mixed
//     floating dtypes in the wider one (with or without autocast).
// Parameters stay f32 (the master weights): the casts are differentiable, so
// parameter gradients arrive in f32 and the optimizer never sees bf16.
// Backward runs with autocast off, whatever the caller's state. The state is
// per thread, as grad mode is.
#pragma once

#include "loom/core/dtype.hpp"

namespace loom {

bool autocast_enabled();
DType autocast_dtype();  // meaningful while autocast_enabled()

class AutocastGuard {
 public:
  // dtype: bf16 or f16. enabled = false turns autocast off for the scope.
  explicit AutocastGuard(DType dtype = DType::bf16, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool previous_enabled_;
  DType previous_dtype_;
};

}  // namespace loom
