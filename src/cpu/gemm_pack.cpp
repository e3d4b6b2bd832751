// Packing for the f32 GEMM: copies a strided block of A or B into the
// depth-major panels the tile kernel reads (the values of one depth step of a
// panel side by side). Any strides work, so a transposed or sliced view is
// packed straight from where it lies, in the order its memory runs:
//  - contiguous along the width (row-major B, column-major A): depth step by
//    depth step, one masked vector copy per kLanes values, so the source is read
//    as long sequential runs (a panel at a time would touch one page per step);
//  - contiguous along the depth (row-major A, column-major B): panel by panel,
//    kLanes x kLanes blocks loaded line by line and transposed in registers;
//  - anything else: element by element.
#include "cpu/gemm_f32.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

#include <algorithm>

namespace loom::cpu::gemm_f32 {

namespace {

constexpr int64_t kPrefetchSteps = 4;

// The first min(count, kLanes) lanes of x to p: a panel narrower than a vector
// (an A panel of kTileRows lines) must not spill into the next depth step.
void store_lanes(float* p, int64_t count, simd::Vec x) {
  if (count >= kLanes)
    simd::store(p, x);
  else
    simd::store(p, simd::first_lanes(count), x);
}

// Panels of `panel_width` lines; the last one is padded only to a multiple of kLanes (at most panel_width).
struct PanelLayout {
  int64_t width, depth, panel_width;
  int64_t panels() const { return (width + panel_width - 1) / panel_width; }
  int64_t first_line(int64_t p) const { return p * panel_width; }
  int64_t lines(int64_t p) const { return std::min(panel_width, width - first_line(p)); }
  int64_t padded(int64_t p) const { return std::min<int64_t>(panel_width, (lines(p) + kLanes - 1) / kLanes * kLanes); }
  float* panel(float* out, int64_t p) const { return out + first_line(p) * depth; }
};

// Depth outermost: each depth step reads one contiguous run of `width` values.
void pack_width_contiguous(const float* src, int64_t depth_stride, const PanelLayout& l, float* out) {
  for (int64_t d = 0; d < l.depth; ++d) {
    const float* line = src + d * depth_stride;
    // Runs start a new page each step, where hardware prefetch loses the stream: fetch ahead.
    if (d + kPrefetchSteps < l.depth)
      for (int64_t w = 0; w < l.width; w += kLanes)
        _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchSteps * depth_stride + w), _MM_HINT_T0);
    for (int64_t p = 0; p < l.panels(); ++p) {
      const int64_t w0 = l.first_line(p), lines = l.lines(p), padded = l.padded(p);
      float* dst = l.panel(out, p) + d * padded;
      for (int64_t w = 0; w < padded; w += kLanes) {
        const float* from = line + w0 + w;
        const simd::Vec x = lines - w >= kLanes ? simd::load(from) : simd::load(from, simd::first_lanes(lines - w));
        store_lanes(dst + w, padded - w, x);
      }
    }
  }
}

// Panel by panel, kLanes depth steps of kLanes lines at a time, transposed in registers.
void pack_depth_contiguous(const float* src, int64_t width_stride, const PanelLayout& l, float* out) {
  simd::Vec v[kLanes];
  for (int64_t p = 0; p < l.panels(); ++p) {
    const float* lines_src = src + l.first_line(p) * width_stride;
    const int64_t lines = l.lines(p), padded = l.padded(p);
    float* dst = l.panel(out, p);
    for (int64_t d = 0; d < l.depth; d += kLanes) {
      const int64_t steps = std::min<int64_t>(kLanes, l.depth - d);
      const simd::Mask depth_mask = simd::first_lanes(steps);
      for (int64_t w = 0; w < padded; w += kLanes) {
        for (int64_t i = 0; i < kLanes; ++i) {
          const float* from = lines_src + (w + i) * width_stride + d;
          v[i] = w + i >= lines          ? simd::zero()
                 : steps == kLanes ? simd::load(from)
                                   : simd::load(from, depth_mask);
        }
        simd::transpose(v);
        for (int64_t s = 0; s < steps; ++s) store_lanes(dst + (d + s) * padded + w, padded - w, v[s]);
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

#endif  // LOOM_GEMM_F32_PACKED
