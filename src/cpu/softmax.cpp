// softmax / log_softmax along the middle axis of [outer, r, inner], and their
// backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// Contiguous rows (inner == 1, the common case: attention scores, logits)
// reduce in lanes with a vectorised exp (exp_row.hpp, vec_row.hpp); a row
// is read from memory once (its maximum and sum of exponentials together,
// for rows of two blocks or more on AVX-512) and revisited from L1/L2.
// Strided rows (inner > 1) walk each column serially.
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/exp_row.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_math.hpp"
#include "cpu/vec_row.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// softmax / log_softmax of one contiguous row.
template <class T>
void softmax_row(const T* in, T* o, int64_t r, bool log) {
  if (log) {
    const ShiftedExpSum<T> e = shifted_exp_sum(in, r);
    const T lse = e.shift + static_cast<T>(std::log(e.sum));
    for (int64_t k = 0; k < r; ++k) o[k] = in[k] - lse;
  } else {
    if (softmax_row_one_pass(in, o, r)) return;
    const T mx = detail::finite_row_max(in, r);
    const double total = exp_row_sum<T>(in, o, r, mx);
    const T inv = static_cast<T>(1.0 / total);
    for (int64_t k = 0; k < r; ++k) o[k] *= inv;
  }
}

// Backward of one contiguous row from the saved output y.
template <class T>
void softmax_backward_row(const T* g, const T* y, T* d, int64_t r, bool log) {
  if (log) {
    const T s = static_cast<T>(lane_sum<T>(r, [&](int64_t k) { return g[k]; }));
    for (int64_t k = 0; k < r; ++k) d[k] = g[k] - math<T>::exp(y[k]) * s;
  } else {
    const T s = static_cast<T>(lane_sum<T>(r, [&](int64_t k) { return g[k] * y[k]; }));
    for (int64_t k = 0; k < r; ++k) d[k] = y[k] * (g[k] - s);
  }
}

// One strided row (stride `inner`) of softmax / log_softmax.
template <class T>
void softmax_strided(const T* in, T* o, int64_t r, int64_t inner, bool log) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < r; ++k) mx = std::max(mx, in[k * inner]);
  mx = detail::finite_shift(mx);
  double total = 0;
  for (int64_t k = 0; k < r; ++k) {
    const T e = math<T>::exp(in[k * inner] - mx);
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

template <class T>
void softmax_backward_strided(const T* g, const T* y, T* d, int64_t r, int64_t inner, bool log) {
  double s = 0;
  for (int64_t k = 0; k < r; ++k) s += log ? g[k * inner] : g[k * inner] * y[k * inner];
  const T st = static_cast<T>(s);
  for (int64_t k = 0; k < r; ++k) {
    const int64_t i = k * inner;
    d[i] = log ? g[i] - math<T>::exp(y[i]) * st : y[i] * (g[i] - st);
  }
}

int64_t outer_grain(int64_t r, int64_t inner) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, r * inner)); }

}  // namespace

void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  dispatch_float(x.dtype(), "softmax", [&]<class T>() {
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, outer, outer_grain(r, inner), [&](int64_t a0, int64_t a1) {
      for (int64_t a = a0; a < a1; ++a) {
        const int64_t base = a * r * inner;
        if (inner == 1) softmax_row(xp + base, op + base, r, log);
        else
          for (int64_t c = 0; c < inner; ++c) softmax_strided(xp + base + c, op + base + c, r, inner, log);
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
    parallel_for(0, outer, outer_grain(r, inner), [&](int64_t a0, int64_t a1) {
      for (int64_t a = a0; a < a1; ++a) {
        const int64_t base = a * r * inner;
        if (inner == 1) softmax_backward_row(gp + base, yp + base, dp + base, r, log);
        else
          for (int64_t c = 0; c < inner; ++c)
            softmax_backward_strided(gp + base + c, yp + base + c, dp + base + c, r, inner, log);
      }
    });
  });
}

}  // namespace loom::cpu
