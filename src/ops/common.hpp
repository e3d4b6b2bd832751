// Helpers shared by the op implementations (not part of the public API).
#pragma once

#include <optional>
#include <utility>

#include "kernels/backend.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/core/random.hpp"
#include "loom/core/tensor.hpp"

namespace loom::ops {

using autograd::BackwardContext;
using autograd::record;

inline const kernels::Backend& kernels_for(const Tensor& t) { return kernels::backend(t.device()); }

// A view of t broadcast to `shape` (stride 0 on new or size-1 dims), without
// recording autograd; the caller has already checked the shapes broadcast.
Tensor broadcast_view(const Tensor& t, const Shape& shape);

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_floating(const Tensor& t, const char* op);
void check_integer_index(const Tensor& t, const char* op, const char* arg);
// Throws naming `op` if any value of the integer tensor `index` is outside [0, size).
void check_index_range(const Tensor& index, int64_t size, const char* op);

// Operands of two different floating dtypes, cast to the wider one (bf16 with
// f16: f32); nullopt when the dtypes match or are not both floating. The
// casts are differentiable: each gradient returns in its operand's dtype.
std::optional<std::pair<Tensor, Tensor>> promoted_pair(const Tensor& a, const Tensor& b);
// Under autocast (loom/ops/autocast.hpp): an f32 operand of a product cast to
// the autocast dtype, and a half input of an f32 op cast to f32. Otherwise t.
// Parameters' casts come from their cached copies (see there).
Tensor autocast_product_operand(const Tensor& t);
Tensor autocast_to_f32(const Tensor& t);
// `out`, which holds x's values in another floating dtype, as the graph's
// cast of x: its gradient returns in x's dtype.
Tensor record_cast(const Tensor& out, const Tensor& x);

// t contiguous and detached: what a fused kernel entry reads and a backward
// saves (no second reference into the graph).
inline Tensor dense(const Tensor& t) { return t.contiguous().detach(); }

// Where a Philox draw of n elements starts: the generator's seed (gen, else
// the default generator) and the first of the (n + 3) / 4 blocks it reserves.
struct DrawStart {
  uint64_t seed, block;
};
inline DrawStart reserve_draw(Generator* gen, int64_t n) {
  Generator& g = gen ? *gen : default_generator();
  const uint64_t block = g.advance(static_cast<uint64_t>((n + 3) / 4));
  return {g.seed(), block};
}

// The contiguous [outer, r, inner] decomposition of a tensor around `dim`.
struct AxisSplit {
  int64_t outer = 1, r = 1, inner = 1;
};
AxisSplit split_at(const Shape& shape, int64_t dim);

}  // namespace loom::ops
