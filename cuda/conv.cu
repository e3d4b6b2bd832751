// im2col / col2im for 2-D windows (convolutions are one GEMM per batch on top):
//   cols[n, (c*KH + i)*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)
// Floor: no FLOPs for unfold (fold: one add per cols element); unfold writes
// N*C*KH*KW*OH*OW elements and reads x (from cache, KH*KW times each).
// fold2d runs one thread per x element that sums the cols entries landing on
// it, so it needs no atomics and is deterministic.
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

struct Geometry {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

template <class T>
__global__ void unfold_kernel(const T* x, T* cols, Geometry g) {
  const int64_t total = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
  LOOM_GRID_LOOP(e, total) {
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
__global__ void fold_kernel(const T* cols, T* x, Geometry g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  LOOM_GRID_LOOP(e, total) {
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

Geometry geometry(const Tensor& x, const Window2d& w) {
  const int64_t h = x.size(2), wd = x.size(3);
  return Geometry{x.size(0), x.size(1), h, wd, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw,
                  (h + 2 * w.ph - w.kh) / w.sh + 1, (wd + 2 * w.pw - w.kw) / w.sw + 1};
}

void check_shapes(const Tensor& x, const Tensor& cols, const Geometry& g, const char* op) {
  LOOM_CHECK(x.dim() == 4 && x.is_contiguous(), op, ": x must be a contiguous [N, C, H, W], got ",
             shape_str(x.shape()));
  LOOM_CHECK(cols.is_contiguous() && cols.numel() == g.n * g.c * g.kh * g.kw * g.oh * g.ow, op, ": cols ",
             shape_str(cols.shape()), " does not match the window over ", shape_str(x.shape()));
  LOOM_CHECK(x.dtype() == cols.dtype(), op, ": dtype mismatch");
}

}  // namespace

void unfold2d(const Tensor& x, const Tensor& cols, const Window2d& w) {
  OnDevice on(cols, "unfold2d");
  on.check(x, "unfold2d", "x");
  const Geometry g = geometry(x, w);
  check_shapes(x, cols, g, "unfold2d");
  const int64_t total = cols.numel();
  if (total == 0) return;
  switch (x.dtype()) {
    case DType::f32:
      unfold_kernel<float><<<grid_for(total), kThreads, 0, on.stream>>>(static_cast<const float*>(x.raw_data()),
                                                                         static_cast<float*>(cols.raw_data()), g);
      break;
    case DType::f64:
      unfold_kernel<double><<<grid_for(total), kThreads, 0, on.stream>>>(static_cast<const double*>(x.raw_data()),
                                                                          static_cast<double*>(cols.raw_data()), g);
      break;
    default: LOOM_FAIL("unfold2d: expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
  }
  LOOM_CUDA_CHECK_LAUNCH("unfold_kernel", shape_str(x.shape()));
}

void fold2d(const Tensor& cols, const Tensor& x_grad, const Window2d& w) {
  OnDevice on(x_grad, "fold2d");
  on.check(cols, "fold2d", "cols");
  const Geometry g = geometry(x_grad, w);
  check_shapes(x_grad, cols, g, "fold2d");
  const int64_t total = x_grad.numel();
  if (total == 0) return;
  switch (x_grad.dtype()) {
    case DType::f32:
      fold_kernel<float><<<grid_for(total), kThreads, 0, on.stream>>>(static_cast<const float*>(cols.raw_data()),
                                                                       static_cast<float*>(x_grad.raw_data()), g);
      break;
    case DType::f64:
      fold_kernel<double><<<grid_for(total), kThreads, 0, on.stream>>>(static_cast<const double*>(cols.raw_data()),
                                                                        static_cast<double*>(x_grad.raw_data()), g);
      break;
    default: LOOM_FAIL("fold2d: expected a f32 or f64 tensor, got ", dtype_name(x_grad.dtype()));
  }
  LOOM_CUDA_CHECK_LAUNCH("fold_kernel", shape_str(x_grad.shape()));
}

}  // namespace loom::cuda
