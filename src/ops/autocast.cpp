// Autocast state (thread-local) and the casts the ops apply under it.
#include "loom/ops/autocast.hpp"

#include <mutex>

#include "loom/autograd/grad_mode.hpp"
#include "loom/core/error.hpp"
#include "loom/ops/elementwise.hpp"
#include "ops/common.hpp"

namespace loom {

namespace {
thread_local bool t_enabled = false;
thread_local DType t_dtype = DType::bf16;
thread_local bool t_cache = true;

// Guards every storage's CastCopy slot: forwards on several threads (a
// server) may share one model's parameters.
std::mutex g_cast_copies;

// A parameter: a leaf that requires grad and is not a view of part of its
// storage (its copy is then the whole storage's, which AdamW can rewrite).
bool is_cached_parameter(const Tensor& t) {
  return t.requires_grad() && t.is_leaf() && t.is_contiguous() && t.offset() == 0 &&
         static_cast<size_t>(t.numel()) * itemsize(t.dtype()) == t.storage()->nbytes();
}

// A fresh handle on the cached copy, shaped like param (its own autograd state).
Tensor view_of_copy(const Storage::CastCopy& slot, const Tensor& param) {
  const Tensor copy(slot.copy);
  return make_view(copy, param.shape(), param.strides(), 0);
}

bool is_current(const Storage::CastCopy& slot, const Tensor& param, DType dtype) {
  return slot.copy != nullptr && slot.dtype == dtype && slot.of_version == param.version();
}

// param cast to dtype through its cached copy (made now when it is missing or
// stale), as the graph's cast node when param needs a gradient.
Tensor cached_cast(const Tensor& param, DType dtype) {
  Tensor copy;
  {
    std::lock_guard<std::mutex> lock(g_cast_copies);
    Storage::CastCopy& slot = param.storage()->cast_copy();
    if (!is_current(slot, param, dtype)) {
      NoGradGuard outside_the_graph;
      const Tensor fresh = to_dtype(param, dtype);
      slot = {fresh.impl_ptr(), dtype, param.version()};
    }
    copy = view_of_copy(slot, param);
  }
  return ops::record_cast(copy, param);
}
}  // namespace

bool autocast_enabled() { return t_enabled; }
DType autocast_dtype() { return t_dtype; }

AutocastGuard::AutocastGuard(DType dtype, bool enabled, bool cache_casts)
    : previous_enabled_(t_enabled), previous_dtype_(t_dtype), previous_cache_(t_cache) {
  LOOM_CHECK(!enabled || is_half(dtype), "AutocastGuard: dtype must be bf16 or f16, got ", dtype_name(dtype));
  t_enabled = enabled;
  if (enabled) {
    t_dtype = dtype;
    t_cache = cache_casts;
  }
}

AutocastGuard::~AutocastGuard() {
  t_enabled = previous_enabled_;
  t_dtype = previous_dtype_;
  t_cache = previous_cache_;
}

Tensor current_cast_copy(const Tensor& param, DType dtype) {
  if (!param.defined()) return {};
  std::lock_guard<std::mutex> lock(g_cast_copies);
  const Storage::CastCopy& slot = param.storage()->cast_copy();
  return is_current(slot, param, dtype) ? view_of_copy(slot, param) : Tensor();
}

void cast_copy_refreshed(const Tensor& param) {
  std::lock_guard<std::mutex> lock(g_cast_copies);
  Storage::CastCopy& slot = param.storage()->cast_copy();
  LOOM_CHECK(slot.copy != nullptr, "cast_copy_refreshed: the tensor of shape ", shape_str(param.shape()),
             " has no cached copy");
  slot.of_version = param.version();
}

namespace ops {

Tensor autocast_product_operand(const Tensor& t) {
  if (!t_enabled || !t.defined() || t.dtype() != DType::f32) return t;
  if (t_cache && is_cached_parameter(t)) return cached_cast(t, t_dtype);
  return to_dtype(t, t_dtype);
}

Tensor autocast_to_f32(const Tensor& t) {
  if (!t_enabled || !t.defined() || !is_half(t.dtype())) return t;
  return to_dtype(t, DType::f32);
}

}  // namespace ops
}  // namespace loom
