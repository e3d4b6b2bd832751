// Packing for the f32 GEMM: copies a strided block of A or B into the
// depth-major panels the tile kernel reads (the values of one depth step of a
// panel side by side). Any strides work, so a transposed or sliced view is
// packed straight from where it lies, in the order its memory runs:
//  - contiguous along the width (row-major B, column-major A): depth step by
//    depth step, one masked vector copy per 16 values, so the source is read
//    as long sequential runs (a panel at a time would touch one page per step);
//  - contiguous along the depth (row-major A, column-major B): panel by panel,
//    16 x 16 blocks loaded line by line and transposed in registers;
//  - anything else: element by element.
#include "cpu/gemm_f32.hpp"

#if defined(__AVX512F__)

#include <algorithm>

namespace loom::cpu::gemm_f32 {

namespace {

constexpr int64_t kPrefetchSteps = 4;

// In place: afterwards v[j] holds element j of every input vector v[0..15].
void transpose_16x16(__m512 v[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // per lane: groups of four rows, one element each
    v[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    v[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    v[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    v[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Now lane L of v[4g + j] holds element 4L + j of rows 4g..4g+3: gather the lanes.
  for (int j = 0; j < 4; ++j) {
    const __m512 lo01 = _mm512_shuffle_f32x4(v[j], v[4 + j], 0x44);
    const __m512 hi01 = _mm512_shuffle_f32x4(v[j], v[4 + j], 0xEE);
    const __m512 lo23 = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0x44);
    const __m512 hi23 = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0xEE);
    t[j] = _mm512_shuffle_f32x4(lo01, lo23, 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(lo01, lo23, 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(hi01, hi23, 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(hi01, hi23, 0xDD);
  }
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

// Panels of `panel_width` lines; the last one is padded only to a multiple of 16 (at most panel_width).
struct PanelLayout {
  int64_t width, depth, panel_width;
  int64_t panels() const { return (width + panel_width - 1) / panel_width; }
  int64_t first_line(int64_t p) const { return p * panel_width; }
  int64_t lines(int64_t p) const { return std::min(panel_width, width - first_line(p)); }
  int64_t padded(int64_t p) const { return std::min(panel_width, (lines(p) + 15) / 16 * 16); }
  float* panel(float* out, int64_t p) const { return out + first_line(p) * depth; }
};

// Depth outermost: each depth step reads one contiguous run of `width` values.
void pack_width_contiguous(const float* src, int64_t depth_stride, const PanelLayout& l, float* out) {
  for (int64_t d = 0; d < l.depth; ++d) {
    const float* line = src + d * depth_stride;
    // Runs start a new page each step, where hardware prefetch loses the stream: fetch ahead.
    if (d + kPrefetchSteps < l.depth)
      for (int64_t w = 0; w < l.width; w += 16)
        _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchSteps * depth_stride + w), _MM_HINT_T0);
    for (int64_t p = 0; p < l.panels(); ++p) {
      const int64_t w0 = l.first_line(p), lines = l.lines(p), padded = l.padded(p);
      float* dst = l.panel(out, p) + d * padded;
      for (int64_t w = 0; w < padded; w += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(first_lanes(std::max<int64_t>(lines - w, 0)), line + w0 + w);
        _mm512_mask_storeu_ps(dst + w, first_lanes(padded - w), x);
      }
    }
  }
}

// Panel by panel, 16 depth steps of 16 lines at a time, transposed in registers.
void pack_depth_contiguous(const float* src, int64_t width_stride, const PanelLayout& l, float* out) {
  __m512 v[16];
  for (int64_t p = 0; p < l.panels(); ++p) {
    const float* lines_src = src + l.first_line(p) * width_stride;
    const int64_t lines = l.lines(p), padded = l.padded(p);
    float* dst = l.panel(out, p);
    for (int64_t d = 0; d < l.depth; d += 16) {
      const int64_t steps = std::min<int64_t>(16, l.depth - d);
      const __mmask16 depth_mask = first_lanes(steps);
      for (int64_t w = 0; w < padded; w += 16) {
        for (int64_t i = 0; i < 16; ++i)
          v[i] = w + i < lines ? _mm512_maskz_loadu_ps(depth_mask, lines_src + (w + i) * width_stride + d)
                               : _mm512_setzero_ps();
        transpose_16x16(v);
        const __mmask16 width_mask = first_lanes(padded - w);
        for (int64_t s = 0; s < steps; ++s) _mm512_mask_storeu_ps(dst + (d + s) * padded + w, width_mask, v[s]);
      }
    }
  }
}

void pack_strided(const float* src, int64_t width_stride, int64_t depth_stride, const PanelLayout& l, float* out) {
  for (int64_t p = 0; p < l.panels(); ++p) {
    const float* lines_src = src + l.first_line(p) * width_stride;
    const int64_t lines = l.lines(p), padded = l.padded(p);
    float* dst = l.panel(out, p);
    for (int64_t d = 0; d < l.depth; ++d) {
      for (int64_t w = 0; w < lines; ++w) dst[d * padded + w] = lines_src[w * width_stride + d * depth_stride];
      for (int64_t w = lines; w < padded; ++w) dst[d * padded + w] = 0.0f;
    }
  }
}

}  // namespace

void pack_panels(const float* src, int64_t width_stride, int64_t depth_stride, int64_t width, int64_t depth,
                 int64_t panel_width, float* out) {
  const PanelLayout layout{width, depth, panel_width};
  if (width_stride == 1 || width == 1)
    pack_width_contiguous(src, depth_stride, layout, out);
  else if (depth_stride == 1 || depth == 1)
    pack_depth_contiguous(src, width_stride, layout, out);
  else
    pack_strided(src, width_stride, depth_stride, layout, out);
}

}  // namespace loom::cpu::gemm_f32

#endif  // __AVX512F__
