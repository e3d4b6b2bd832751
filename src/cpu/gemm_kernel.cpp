// The register-tile kernel of the f32 GEMM: a kTileRows x (16 * Vectors)
// block of C held in zmm accumulators while it walks the depth of an A panel
// (kTileRows consecutive floats per step, broadcast one at a time) and a B
// panel (16 * Vectors consecutive floats per step). Both are usually packed,
// but the steps are parameters so that a column-major A or a row-major B can
// also be read where it lies. Ragged edges: rows beyond `rows` are computed
// (from packed zero padding) and dropped; the last column vector is loaded and
// stored through a mask.
#include "cpu/gemm_f32.hpp"

#if defined(__AVX512F__)

namespace loom::cpu::gemm_f32 {

template <int Vectors>
void tile_kernel(int64_t depth, const float* a_panel, int64_t a_step, const float* b_panel, int64_t b_step, float* c,
                 int64_t ldc, int rows, __mmask16 last_mask, bool accumulate) {
  // The C tile is needed only after the depth loop: start fetching it now.
  for (int r = 0; r < rows; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * Vectors - 1), _MM_HINT_T0);
  }
  __m512 acc[kTileRows][Vectors];
#pragma GCC unroll 14
  for (int r = 0; r < kTileRows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_setzero_ps();

  const float* a = a_panel;
  const float* b = b_panel;
#pragma GCC unroll 2
  for (int64_t d = 0; d < depth; ++d) {
    __m512 bv[Vectors];
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v)
      bv[v] = v == Vectors - 1 ? _mm512_maskz_loadu_ps(last_mask, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 14
    for (int r = 0; r < kTileRows; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 2
      for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += a_step;
    b += b_step;
  }

#pragma GCC unroll 14
  for (int r = 0; r < kTileRows; ++r) {
    if (r >= rows) break;
    float* row = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) {
      const __mmask16 mask = v == Vectors - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
      __m512 x = acc[r][v];
      if (accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, row + 16 * v));
      _mm512_mask_storeu_ps(row + 16 * v, mask, x);
    }
  }
}

template void tile_kernel<1>(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, __mmask16,
                             bool);
template void tile_kernel<2>(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, __mmask16,
                             bool);

}  // namespace loom::cpu::gemm_f32

#endif  // __AVX512F__
