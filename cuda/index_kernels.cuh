// Indexing along a dim: index_select / index_add, gather / scatter.
// Floor: no FLOPs (index_add and scatter-add: one add per element); each
// moves the selected elements once: numel(out or index) * (2 * itemsize +
// index itemsize) bytes. Index values were range-checked by the op.
// index_add and scatter(add) accumulate with atomics (f32, f64, i32, i64), so
// the order of additions into one slot, and the last bits of the result, can
// differ from run to run; a plain scatter with repeated indices keeps one of
// the written values (which one is unspecified). (index.cu adds the
// deterministic index_add.) One thread per element, grid-stride, offsets
// from the Indexer. Written on simt.cuh, so the emulator runs it
// (tests/cuda/index_emulated_test.cpp).
#pragma once

#include "elements.cuh"

namespace loom::index_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::strided;

LOOM_SIMT_DEVICE int64_t index_at(const void* p, bool is64, int64_t off) {
  return is64 ? static_cast<const int64_t*>(p)[off] : static_cast<int64_t>(static_cast<const int32_t*>(p)[off]);
}

// The index tensor as the kernels read it.
struct Index {
  const void* data;
  bool is64;
  int64_t stride;  // index_select / index_add: along its one dim
};

// out[o] = x[x_rest + index[j] * x_dim_stride]; the indexer yields (out, x_rest, j).
template <class B>
LOOM_SIMT_GLOBAL void index_select_kernel(int64_t n, Indexer<3> ix, const B* x, int64_t x_dim_stride, Index index,
                                          B* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = x[off[1] + index_at(index.data, index.is64, off[2] * index.stride) * x_dim_stride];
  }
}

// grad_x[x_rest + index[j] * x_dim_stride] += grad_out[o]; indexer: (grad_out, x_rest, j).
template <class T>
LOOM_SIMT_GLOBAL void index_add_kernel(int64_t n, Indexer<3> ix, const T* g, int64_t x_dim_stride, Index index,
                                       T* gx) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    atomic_add(gx + off[1] + index_at(index.data, index.is64, off[2] * index.stride) * x_dim_stride, g[off[0]]);
  }
}

// out[o] = x[x_rest + index[p] * x_dim_stride]; indexer over index.shape: (out, index, x_rest).
template <class B>
LOOM_SIMT_GLOBAL void gather_kernel(int64_t n, Indexer<3> ix, const B* x, int64_t x_dim_stride, Index index, B* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = x[off[2] + index_at(index.data, index.is64, off[1]) * x_dim_stride];
  }
}

// out[o_rest + index[p] * o_dim_stride] (+)= src[s]; indexer over index.shape: (src, index, o_rest).
template <class T, bool Add>
LOOM_SIMT_GLOBAL void scatter_kernel(int64_t n, Indexer<3> ix, const T* src, Index index, T* out,
                                     int64_t out_dim_stride) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    T* slot = out + off[2] + index_at(index.data, index.is64, off[1]) * out_dim_stride;
    if constexpr (Add) atomic_add(slot, src[off[0]]);
    else *slot = src[off[0]];
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::index_kernels
