// The pointwise ops on operands of any strides (broadcasts included): one
// thread per output element, grid-stride, offsets from the Indexer
// (elements.cuh), arithmetic from pointwise_math.cuh; halves compute in float.
// Floor: memory-bound; unary moves numel * 2 * itemsize bytes (backward
// 3-4x), binary and compare 3 operands per element. The op is a runtime
// switch uniform across the grid, so it costs no divergence. Dense, aligned
// f32 and bf16 calls take pointwise_packed.cuh instead. Written on
// simt.cuh, so the emulator runs it (tests/cuda/pointwise_strided_emulated_test.cpp).
#pragma once

#include "elements.cuh"
#include "pointwise_math.cuh"

namespace loom::pointwise {
inline namespace LOOM_SIMT_ABI {

using namespace loom::strided;

template <class T>
LOOM_SIMT_GLOBAL void unary_kernel(int64_t n, Indexer<2> ix, Unary op, UnaryArgs a, const T* x, T* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[off[0]] = from_compute<T>(apply_unary(op, to_compute(x[off[1]]), a));
  }
}

template <class T>
LOOM_SIMT_GLOBAL void unary_backward_kernel(int64_t n, Indexer<4> ix, Unary op, UnaryArgs a, const T* g, const T* x,
                                            const T* y, T* out) {
  using C = compute_t<T>;
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[4];
    ix.offsets(i, off);
    const C gv = to_compute(g[off[1]]);
    out[off[0]] = from_compute<T>(gv * unary_derivative(op, to_compute(x[off[2]]), to_compute(y[off[3]]), a));
  }
}

template <class T>
LOOM_SIMT_GLOBAL void binary_kernel(int64_t n, Indexer<3> ix, Binary op, const T* a, const T* b, T* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = from_compute<T>(apply_binary(op, to_compute(a[off[1]]), to_compute(b[off[2]])));
  }
}

template <class T>
LOOM_SIMT_GLOBAL void compare_kernel(int64_t n, Indexer<3> ix, Compare op, const T* a, const T* b, bool* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = apply_compare(op, to_compute(a[off[1]]), to_compute(b[off[2]]));
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::pointwise
