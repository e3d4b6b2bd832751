// The register-tile kernel of the f32 GEMM: a kTileRows x (kLanes * Vectors)
// block of C held in vector accumulators while it walks the depth of an A
// panel (kTileRows consecutive floats per step, broadcast one at a time) and a
// B panel (kLanes * Vectors consecutive floats per step). Both are usually
// packed, but the steps are parameters so that a column-major A or a row-major
// B can also be read where it lies, and so can a row-major A (one stream per
// row, StridedRows). Ragged edges: rows beyond `rows` are
// computed (from packed zero padding) and dropped; the last column vector is
// stored through a mask, and loaded through it only when B has no padding to
// read (a masked load costs extra on AVX2).
#include "cpu/gemm_f32.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

namespace loom::cpu::gemm_f32 {

template <int Vectors, bool MaskedB, bool StridedRows>
void tile_kernel(int64_t depth, const float* a_panel, int64_t a_step, int64_t a_row, const float* b_panel,
                 int64_t b_step, float* c, int64_t ldc, int rows, simd::Mask last_mask, bool accumulate) {
  using simd::Vec;
  // The C tile is needed only after the depth loop: start fetching it now.
  for (int r = 0; r < rows; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + kLanes * Vectors - 1), _MM_HINT_T0);
  }
  Vec acc[kTileRows][Vectors];
#pragma GCC unroll 14
  for (int r = 0; r < kTileRows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::zero();

  const float* a = a_panel;
  const float* b = b_panel;
#pragma GCC unroll 2
  for (int64_t d = 0; d < depth; ++d) {
    Vec bv[Vectors];
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v)
      bv[v] = MaskedB && v == Vectors - 1 ? simd::load(b + kLanes * v, last_mask) : simd::load(b + kLanes * v);
#pragma GCC unroll 14
    for (int r = 0; r < kTileRows; ++r) {
      const Vec av = simd::broadcast(StridedRows ? a[r * a_row] : a[r]);
#pragma GCC unroll 2
      for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::fmadd(av, bv[v], acc[r][v]);
    }
    a += a_step;
    b += b_step;
  }

  // Full vectors go through plain loads and stores (AVX2's masked ones are slower).
  const bool last_full = simd::all_lanes(last_mask);
#pragma GCC unroll 14
  for (int r = 0; r < kTileRows; ++r) {
    if (r >= rows) break;
    float* row = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) {
      if (v < Vectors - 1 || last_full)
        simd::put(row + kLanes * v, acc[r][v], accumulate);
      else
        simd::put(row + kLanes * v, last_mask, acc[r][v], accumulate);
    }
  }
}

#define LOOM_TILE_KERNEL(VECTORS, MASKED, STRIDED)                                                           \
  template void tile_kernel<VECTORS, MASKED, STRIDED>(int64_t, const float*, int64_t, int64_t, const float*, int64_t, \
                                                      float*, int64_t, int, simd::Mask, bool);
LOOM_TILE_KERNEL(1, false, false)
LOOM_TILE_KERNEL(1, true, false)
LOOM_TILE_KERNEL(2, false, false)
LOOM_TILE_KERNEL(2, true, false)
LOOM_TILE_KERNEL(1, false, true)
LOOM_TILE_KERNEL(1, true, true)
LOOM_TILE_KERNEL(2, false, true)
LOOM_TILE_KERNEL(2, true, true)
#undef LOOM_TILE_KERNEL

}  // namespace loom::cpu::gemm_f32

#endif  // LOOM_GEMM_F32_PACKED
