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

namespace {
int float_rank(DType t) {
  switch (t) {
    case DType::f64: return 3;
    case DType::f32: return 2;
    case DType::bf16:
    case DType::f16: return 1;
    default: return 0;
  }
}
}  // namespace

std::optional<std::pair<Tensor, Tensor>> promoted_pair(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.dtype() == b.dtype()) return std::nullopt;
  const int ra = float_rank(a.dtype()), rb = float_rank(b.dtype());
  if (ra == 0 || rb == 0) return std::nullopt;  // not both floating: the op's own check speaks
  // bf16 with f16: neither holds the other, f32 holds both.
  const DType wide = ra == rb ? DType::f32 : (ra > rb ? a.dtype() : b.dtype());
  return std::make_pair(a.dtype() == wide ? a : to_dtype(a, wide), b.dtype() == wide ? b : to_dtype(b, wide));
}

}  // namespace ops
}  // namespace loom
