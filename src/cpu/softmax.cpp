// softmax / log_softmax along the middle axis of [outer, r, inner], and their
// backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
#include <cmath>
#include <limits>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  dispatch_float(x.dtype(), "softmax", [&]<class T>() {
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, r * inner)), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a) {
      for (int64_t c = 0; c < inner; ++c) {
        const T* in = xp + a * r * inner + c;
        T* o = op + a * r * inner + c;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t k = 0; k < r; ++k) mx = std::max(mx, in[k * inner]);
        if (mx == -std::numeric_limits<T>::infinity()) mx = 0;  // a fully masked row stays finite-safe
        double total = 0;
        for (int64_t k = 0; k < r; ++k) {
          const T e = std::exp(in[k * inner] - mx);
          total += e;
          if (!log) o[k * inner] = e;
        }
        if (log) {
          const T lse = mx + static_cast<T>(std::log(total));
          for (int64_t k = 0; k < r; ++k) o[k * inner] = in[k * inner] - lse;
        } else {
          const T inv = static_cast<T>(1.0 / total);
          for (int64_t k = 0; k < r; ++k) o[k * inner] *= inv;
        }
      }
    }
    });
  });
}

void softmax_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                      int64_t inner, bool log) {
  dispatch_float(y.dtype(), "softmax backward", [&]<class T>() {
    const T* gp = ptr<T>(grad);
    const T* yp = ptr<T>(y);
    T* dp = ptr<T>(grad_in);
    parallel_for(0, outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, r * inner)), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a) {
      for (int64_t c = 0; c < inner; ++c) {
        const int64_t base = a * r * inner + c;
        double s = 0;
        for (int64_t k = 0; k < r; ++k) {
          const int64_t i = base + k * inner;
          s += log ? gp[i] : gp[i] * yp[i];
        }
        const T st = static_cast<T>(s);
        for (int64_t k = 0; k < r; ++k) {
          const int64_t i = base + k * inner;
          dp[i] = log ? gp[i] - std::exp(yp[i]) * st : yp[i] * (gp[i] - st);
        }
      }
    }
    });
  });
}

}  // namespace loom::cpu
