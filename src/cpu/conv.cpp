// im2col / col2im for 2-D windows: convolutions become one GEMM per image.
//   cols[n, (c*KH + i)*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

template <class T, bool Fold>
void window_loop(const Tensor& x, const Tensor& cols, const Window2d& w) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t oh = (h + 2 * w.ph - w.kh) / w.sh + 1, ow = (wd + 2 * w.pw - w.kw) / w.sw + 1;
  T* xp = ptr<T>(x);
  T* cp = ptr<T>(cols);
  // Images are independent (fold writes only its own image), so they run in parallel.
  parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t i = 0; i < w.kh; ++i) {
        for (int64_t j = 0; j < w.kw; ++j) {
          const int64_t row = (ch * w.kh + i) * w.kw + j;
          T* col = cp + (b * c * w.kh * w.kw + row) * oh * ow;
          const T* img = xp + (b * c + ch) * h * wd;
          for (int64_t y = 0; y < oh; ++y) {
            const int64_t iy = y * w.sh - w.ph + i;
            for (int64_t xq = 0; xq < ow; ++xq) {
              const int64_t ix = xq * w.sw - w.pw + j;
              const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < wd;
              if constexpr (Fold) {
                if (inside) const_cast<T*>(img)[iy * wd + ix] += col[y * ow + xq];
              } else {
                col[y * ow + xq] = inside ? img[iy * wd + ix] : T(0);
              }
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
