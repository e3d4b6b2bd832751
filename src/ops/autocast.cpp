// Autocast state (thread-local) and the casts the ops apply under it.
#include "loom/ops/autocast.hpp"

#include "loom/core/error.hpp"
#include "loom/ops/elementwise.hpp"
#include "ops/common.hpp"

namespace loom {

namespace {
thread_local bool t_enabled = false;
thread_local DType t_dtype = DType::bf16;
}  // namespace

bool autocast_enabled() { return t_enabled; }
DType autocast_dtype() { return t_dtype; }

AutocastGuard::AutocastGuard(DType dtype, bool enabled) : previous_enabled_(t_enabled), previous_dtype_(t_dtype) {
  LOOM_CHECK(!enabled || is_half(dtype), "AutocastGuard: dtype must be bf16 or f16, got ", dtype_name(dtype));
  t_enabled = enabled;
  if (enabled) t_dtype = dtype;
}

AutocastGuard::~AutocastGuard() {
  t_enabled = previous_enabled_;
  t_dtype = previous_dtype_;
}

namespace ops {

Tensor autocast_product_operand(const Tensor& t) {
  if (!t_enabled || !t.defined() || t.dtype() != DType::f32) return t;
  return to_dtype(t, t_dtype);
}

Tensor autocast_to_f32(const Tensor& t) {
  if (!t_enabled || !t.defined() || !is_half(t.dtype())) return t;
  return to_dtype(t, DType::f32);
}

}  // namespace ops
}  // namespace loom
