// The pointwise ops' fast path: every operand dense, in the same order, and
// 16-byte aligned, so each thread moves 16 bytes per access (4 f32 or 8 bf16
// values) instead of one element through the strided indexer. One operand of
// a binary op may instead be a single value broadcast to all (x * 0.5).
// Floor: memory-bound, as the strided kernels (elementwise.cu): unary reads
// and writes one value per element (backward reads 3, writes 1), binary
// reads 2 (1 with a broadcast value) and writes 1; the arithmetic is that of
// pointwise_math.cuh. A grid-stride loop over whole packs, then the last
// n % pack elements one by one.
#pragma once

#include "packs.cuh"
#include "pointwise_math.cuh"

namespace loom::pointwise {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr unsigned kPackedThreads = 256;

// Where a thread starts and how far it strides, over a grid of `blocks`.
struct GridStride {
  int64_t first, step;
};
LOOM_SIMT_DEVICE GridStride grid_stride(unsigned blocks) {
  return {static_cast<int64_t>(block_x()) * kPackedThreads + thread_x(), static_cast<int64_t>(blocks) * kPackedThreads};
}

template <class T>
LOOM_SIMT_GLOBAL void unary_packed_kernel(int64_t n, unsigned blocks, Unary op, UnaryArgs a, const T* x, T* out) {
  const GridStride g = grid_stride(blocks);
  const int64_t packs = n / kPack<T>;
  for (int64_t p = g.first; p < packs; p += g.step) {
    const Pack<T> in = load_pack(x, p);
    Pack<T> r;
    for (int k = 0; k < kPack<T>; ++k) r.v[k] = from_float<T>(apply_unary(op, to_float(in.v[k]), a));
    store_pack(out, p, r);
  }
  for (int64_t i = packs * kPack<T> + g.first; i < n; i += g.step)
    out[i] = from_float<T>(apply_unary(op, to_float(x[i]), a));
}

template <class T>
LOOM_SIMT_GLOBAL void unary_backward_packed_kernel(int64_t n, unsigned blocks, Unary op, UnaryArgs a, const T* grad,
                                                   const T* x, const T* y, T* out) {
  const GridStride g = grid_stride(blocks);
  const int64_t packs = n / kPack<T>;
  auto one = [&](T gv, T xv, T yv) {
    return from_float<T>(to_float(gv) * unary_derivative(op, to_float(xv), to_float(yv), a));
  };
  for (int64_t p = g.first; p < packs; p += g.step) {
    const Pack<T> gp = load_pack(grad, p), xp = load_pack(x, p), yp = load_pack(y, p);
    Pack<T> r;
    for (int k = 0; k < kPack<T>; ++k) r.v[k] = one(gp.v[k], xp.v[k], yp.v[k]);
    store_pack(out, p, r);
  }
  for (int64_t i = packs * kPack<T> + g.first; i < n; i += g.step) out[i] = one(grad[i], x[i], y[i]);
}

// a_scalar / b_scalar: that operand is one value, broadcast.
template <class T>
LOOM_SIMT_GLOBAL void binary_packed_kernel(int64_t n, unsigned blocks, Binary op, const T* a, bool a_scalar,
                                           const T* b, bool b_scalar, T* out) {
  const GridStride g = grid_stride(blocks);
  const int64_t packs = n / kPack<T>;
  const float a0 = a_scalar ? to_float(a[0]) : 0.0f, b0 = b_scalar ? to_float(b[0]) : 0.0f;
  for (int64_t p = g.first; p < packs; p += g.step) {
    Pack<T> ap, bp, r;
    if (!a_scalar) ap = load_pack(a, p);
    if (!b_scalar) bp = load_pack(b, p);
    for (int k = 0; k < kPack<T>; ++k) {
      const float x = a_scalar ? a0 : to_float(ap.v[k]), y = b_scalar ? b0 : to_float(bp.v[k]);
      r.v[k] = from_float<T>(apply_binary(op, x, y));
    }
    store_pack(out, p, r);
  }
  for (int64_t i = packs * kPack<T> + g.first; i < n; i += g.step) {
    const float x = a_scalar ? a0 : to_float(a[i]), y = b_scalar ? b0 : to_float(b[i]);
    out[i] = from_float<T>(apply_binary(op, x, y));
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::pointwise
