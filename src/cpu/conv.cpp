// im2col / col2im for 2-D windows: convolutions become GEMMs.
//   cols[n, (c*KH + i)*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)
// cols is a view [N, C*KH*KW, OH*OW] with any strides for n and the row.
#include <algorithm>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// The output columns [lo, hi) of a window tap whose input column
// ix = xq * stride - pad + tap lies inside [0, width).
struct Inside {
  int64_t lo, hi;
};

Inside inside_columns(int64_t width, int64_t out_width, int64_t stride, int64_t pad, int64_t tap) {
  const int64_t first = pad - tap;  // xq * stride >= first
  int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t hi = (width - 1 + pad - tap) < 0 ? 0 : (width - 1 + pad - tap) / stride + 1;
  lo = std::min(lo, out_width);
  hi = std::clamp(hi, lo, out_width);
  return {lo, hi};
}

template <class T, bool Fold>
void window_loop(const Tensor& x, const Tensor& cols, const Window2d& w) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t oh = (h + 2 * w.ph - w.kh) / w.sh + 1, ow = (wd + 2 * w.pw - w.kw) / w.sw + 1;
  T* xp = ptr<T>(x);
  T* cp = ptr<T>(cols);
  // cols: [N, C*KH*KW, OH*OW], contiguous along the positions (the conv
  // entry's and the unfold2d op's are contiguous throughout).
  LOOM_CHECK(cols.stride(2) == 1 || oh * ow <= 1, "unfold2d: columns must be contiguous along the positions");
  const int64_t batch_stride = cols.stride(0), row_stride = cols.stride(1);
  // Images are independent (fold writes only its own image), so they run in parallel.
  parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t ch = 0; ch < c; ++ch) {
        T* img = xp + (b * c + ch) * h * wd;
        for (int64_t i = 0; i < w.kh; ++i) {
          for (int64_t j = 0; j < w.kw; ++j) {
            const int64_t row = (ch * w.kh + i) * w.kw + j;
            T* col = cp + b * batch_stride + row * row_stride;
            // The bounds test leaves the inner loop: columns [lo, hi) read
            // the image, the ones outside are padding.
            const Inside in = inside_columns(wd, ow, w.sw, w.pw, j);
            for (int64_t y = 0; y < oh; ++y) {
              const int64_t iy = y * w.sh - w.ph + i;
              T* out = col + y * ow;
              const bool row_inside = iy >= 0 && iy < h;
              if constexpr (Fold) {
                if (!row_inside) continue;
                const int64_t base = iy * wd - w.pw + j;  // + xq * sw: image column xq * sw - pw + j
                for (int64_t xq = in.lo; xq < in.hi; ++xq) img[base + xq * w.sw] += out[xq];
              } else {
                if (!row_inside) {
                  std::fill(out, out + ow, T(0));
                  continue;
                }
                const int64_t base = iy * wd - w.pw + j;
                std::fill(out, out + in.lo, T(0));
                if (w.sw == 1) {
                  if (in.hi > in.lo) std::copy(img + base + in.lo, img + base + in.hi, out + in.lo);
                } else if (w.sw == 2) {  // a constant stride: even lanes of two loads, not a gather
                  for (int64_t xq = in.lo; xq < in.hi; ++xq) out[xq] = img[base + xq * 2];
                } else {
                  for (int64_t xq = in.lo; xq < in.hi; ++xq) out[xq] = img[base + xq * w.sw];
                }
                std::fill(out + in.hi, out + ow, T(0));
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace

void unfold2d(const Tensor& x, const Tensor& cols, const Window2d& w) {
  dispatch_float(x.dtype(), "unfold2d", [&]<class T>() { window_loop<T, false>(x, cols, w); });
}

void fold2d(const Tensor& cols, const Tensor& x_grad, const Window2d& w) {
  dispatch_float(x_grad.dtype(), "fold2d", [&]<class T>() { window_loop<T, true>(x_grad, cols, w); });
}

}  // namespace loom::cpu
