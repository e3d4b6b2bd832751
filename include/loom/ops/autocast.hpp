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
//
// A parameter's cast is cached (as torch.autocast's cast cache, but kept
// across steps): an f32 leaf that requires grad, or a module's frozen
// parameter (LoRA's base weights), spanning its whole storage, is cast once,
// and every product reads that copy until the parameter's storage version
// moves (an optimizer step, copy_, load_state_dict, merge_lora).
// AdamW writes the bf16 copy in the pass that updates the parameter, so a
// bf16 training step casts no weights at all. Code that writes a parameter's
// memory other than through a tensor op must bump its version
// (`storage()->bump_version()`), as it must for autograd's saved tensors.
#pragma once

#include <optional>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom {

bool autocast_enabled();
DType autocast_dtype();  // meaningful while autocast_enabled()
bool autocast_caches_casts();

class AutocastGuard {
 public:
  // dtype: bf16 or f16. enabled = false turns autocast off for the scope.
  // cache_casts = false casts parameters afresh at every use; unset, the
  // enclosing scope's choice holds (on outside any guard).
  explicit AutocastGuard(DType dtype = DType::bf16, bool enabled = true, std::optional<bool> cache_casts = {});
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool previous_enabled_;
  DType previous_dtype_;
  bool previous_cache_;
};

// The cached cast of parameter `param` to `dtype` while it is current (made
// from the parameter's present values), else an undefined tensor (also for
// a tensor whose casts are not cached). Outside the autograd graph; for
// optimizers that rewrite it as they update the parameter (AdamW).
Tensor current_cast_copy(const Tensor& param, DType dtype);
// After such a writer has rewritten `copy` (from current_cast_copy at
// parameter version from_version) and bumped the parameter's version once:
// marks the copy current again. Returns false, changing nothing, when
// anything else changed the parameter or its copy meanwhile (the copy then
// stays stale and the next use casts afresh).
bool cast_copy_refreshed(const Tensor& param, const Tensor& copy, uint64_t from_version);
// Frees the cached copies of `params` (say, before f32 evaluation of a model
// trained in bf16); later casts make new ones.
void drop_cast_copies(const std::vector<Tensor>& params);

}  // namespace loom
