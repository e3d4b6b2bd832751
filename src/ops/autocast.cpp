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
// server) may share one model's parameters. Casts run outside it.
std::mutex g_cast_copies;

// A parameter: an f32 leaf that requires grad, or a module's frozen
// parameter (LoRA's base weights), and not a view of part of its storage
// (its copy is then the whole storage's, which AdamW can rewrite).
bool is_cached_parameter(const Tensor& t) {
  return t.dtype() == DType::f32 && ((t.requires_grad() && t.is_leaf()) || t.impl()->is_parameter) &&
         t.is_contiguous() && t.offset() == 0 &&
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

// The current copy's view, or undefined; the caller holds the lock.
Tensor current_view(const Tensor& param, DType dtype) {
  const Storage::CastCopy& slot = param.storage()->cast_copy();
  return is_current(slot, param, dtype) ? view_of_copy(slot, param) : Tensor();
}

// param cast to dtype through its cached copy (made now when it is missing or
// stale), as the graph's cast node when param needs a gradient.
Tensor cached_cast(const Tensor& param, DType dtype) {
  Tensor copy;
  {
    std::lock_guard<std::mutex> lock(g_cast_copies);
    copy = current_view(param, dtype);
  }
  if (!copy.defined()) {
    const uint64_t version = param.version();
    {
      NoGradGuard outside_the_graph;
      copy = to_dtype(param, dtype);
    }
    // Kept unless the parameter changed while it was cast (then this use
    // still reads what it cast, and the next one casts again).
    std::lock_guard<std::mutex> lock(g_cast_copies);
    if (param.version() == version) param.storage()->cast_copy() = {copy.impl_ptr(), dtype, version};
    copy = copy.detach();  // the slot's handle keeps no autograd state
  }
  return ops::record_cast(copy, param);
}
}  // namespace

bool autocast_enabled() { return t_enabled; }
DType autocast_dtype() { return t_dtype; }
bool autocast_caches_casts() { return t_cache; }

AutocastGuard::AutocastGuard(DType dtype, bool enabled, std::optional<bool> cache_casts)
    : previous_enabled_(t_enabled), previous_dtype_(t_dtype), previous_cache_(t_cache) {
  LOOM_CHECK(!enabled || is_half(dtype), "AutocastGuard: dtype must be bf16 or f16, got ", dtype_name(dtype));
  t_enabled = enabled;
  if (enabled) t_dtype = dtype;
  if (cache_casts.has_value()) t_cache = *cache_casts;
}

AutocastGuard::~AutocastGuard() {
  t_enabled = previous_enabled_;
  t_dtype = previous_dtype_;
  t_cache = previous_cache_;
}

Tensor current_cast_copy(const Tensor& param, DType dtype) {
  if (!param.defined() || !is_cached_parameter(param)) return {};
  std::lock_guard<std::mutex> lock(g_cast_copies);
  return current_view(param, dtype);
}

bool cast_copy_refreshed(const Tensor& param, const Tensor& copy, uint64_t from_version) {
  if (!param.defined() || !copy.defined()) return false;
  std::lock_guard<std::mutex> lock(g_cast_copies);
  Storage::CastCopy& slot = param.storage()->cast_copy();
  // Only the writer's own change: the slot still holds this copy, made at
  // from_version, and the parameter moved by exactly the writer's bump.
  if (slot.copy == nullptr || slot.copy->storage != copy.storage() || slot.of_version != from_version ||
      param.version() != from_version + 1)
    return false;
  slot.of_version = param.version();
  return true;
}

void drop_cast_copies(const std::vector<Tensor>& params) {
  std::lock_guard<std::mutex> lock(g_cast_copies);
  for (const Tensor& p : params)
    if (p.defined()) p.storage()->cast_copy() = {};
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
