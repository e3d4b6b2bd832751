// im2col / col2im for 2-D windows (convolutions are one GEMM per batch on top):
//   cols[n, (c*KH + i)*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)
// Floor: no FLOPs for unfold (fold: one add per cols element); unfold writes
// N*C*KH*KW*OH*OW elements and reads x (from cache, KH*KW times each).
// fold2d runs one thread per x element that sums the cols entries landing on
// it, so it needs no atomics and is deterministic. Written on simt.cuh, so
// the emulator runs it (tests/cuda/conv_optimizer_emulated_test.cpp).
#pragma once

#include "elements.cuh"
#include "kernels/backend.hpp"

namespace loom::conv_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::strided;

struct Geometry {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

template <class T>
LOOM_SIMT_GLOBAL void unfold_kernel(const T* x, T* cols, Geometry g) {
  const int64_t total = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
  LOOM_SIMT_GRID_LOOP(e, total) {
    const int64_t pos = e % (g.oh * g.ow);
    const int64_t row = (e / (g.oh * g.ow)) % (g.c * g.kh * g.kw);
    const int64_t b = e / (g.oh * g.ow * g.c * g.kh * g.kw);
    const int64_t j = row % g.kw, i = (row / g.kw) % g.kh, ch = row / (g.kw * g.kh);
    const int64_t y = pos / g.ow, xq = pos % g.ow;
    const int64_t iy = y * g.sh - g.ph + i, ix = xq * g.sw - g.pw + j;
    const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
    cols[e] = inside ? x[((b * g.c + ch) * g.h + iy) * g.w + ix] : T(0);
  }
}

template <class T>
LOOM_SIMT_GLOBAL void fold_kernel(const T* cols, T* x, Geometry g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  LOOM_SIMT_GRID_LOOP(e, total) {
    const int64_t ix = e % g.w, iy = (e / g.w) % g.h, ch = (e / (g.w * g.h)) % g.c, b = e / (g.w * g.h * g.c);
    T acc = T(0);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ty = iy + g.ph - i;  // = y * sh
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.oh) continue;
      const int64_t y = ty / g.sh;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tx = ix + g.pw - j;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.ow) continue;
        const int64_t xq = tx / g.sw;
        const int64_t row = (ch * g.kh + i) * g.kw + j;
        acc += cols[((b * g.c * g.kh * g.kw) + row) * g.oh * g.ow + y * g.ow + xq];
      }
    }
    x[e] += acc;
  }
}

inline Geometry geometry(const Tensor& x, const kernels::Window2d& w) {
  const int64_t h = x.size(2), wd = x.size(3);
  return Geometry{x.size(0), x.size(1), h, wd, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw,
                  (h + 2 * w.ph - w.kh) / w.sh + 1, (wd + 2 * w.pw - w.kw) / w.sw + 1};
}

inline void check_shapes(const Tensor& x, const Tensor& cols, const Geometry& g, const char* op) {
  LOOM_CHECK(x.dim() == 4 && x.is_contiguous(), op, ": x must be a contiguous [N, C, H, W], got ",
             shape_str(x.shape()));
  LOOM_CHECK(cols.is_contiguous() && cols.numel() == g.n * g.c * g.kh * g.kw * g.oh * g.ow, op, ": cols ",
             shape_str(cols.shape()), " does not match the window over ", shape_str(x.shape()));
  LOOM_CHECK(x.dtype() == cols.dtype(), op, ": dtype mismatch");
}

// The Backend::unfold2d / fold2d entries after their device checks.
template <class Check>
void run_unfold(const Tensor& x, const Tensor& cols, const kernels::Window2d& w, Stream stream, Check&& check) {
  const Geometry g = geometry(x, w);
  check_shapes(x, cols, g, "unfold2d");
  const int64_t total = cols.numel();
  if (total == 0) return;
  with_f32_or_f64(x.dtype(), "unfold2d", [&]<class T>() {
    check(launch(Dim3(grid_for(total)), Dim3(kThreads), 0, stream, unfold_kernel<T>,
                 static_cast<const T*>(x.raw_data()), static_cast<T*>(cols.raw_data()), g),
          "unfold2d");
  });
}

template <class Check>
void run_fold(const Tensor& cols, const Tensor& x_grad, const kernels::Window2d& w, Stream stream, Check&& check) {
  const Geometry g = geometry(x_grad, w);
  check_shapes(x_grad, cols, g, "fold2d");
  const int64_t total = x_grad.numel();
  if (total == 0) return;
  with_f32_or_f64(x_grad.dtype(), "fold2d", [&]<class T>() {
    check(launch(Dim3(grid_for(total)), Dim3(kThreads), 0, stream, fold_kernel<T>,
                 static_cast<const T*>(cols.raw_data()), static_cast<T*>(x_grad.raw_data()), g),
          "fold2d");
  });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::conv_kernels
