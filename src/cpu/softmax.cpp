// softmax / log_softmax along the middle axis of [outer, r, inner], and their
// backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// exp for f32 that the compiler vectorises: 2^n * p(r) with x = n ln2 + r,
// |r| <= ln2 / 2, p a degree-7 Taylor polynomial (relative error ~1e-7).
// Inputs below -87.3 give 0 (so -inf, a masked score, gives 0); NaN stays NaN.
inline float vexp(float x) {
  const bool zero = x < -87.3f;
  x = x > 88.7f ? 88.7f : x;
  const float t = x * 1.44269504088896341f + 12582912.0f;  // round(x / ln2) in the low mantissa bits
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t ti, si;
  std::memcpy(&ti, &t, 4);
  si = (ti - 0x4B400000 + 127) << 23;  // 2^n as float bits
  float scale;
  std::memcpy(&scale, &si, 4);
  return zero ? 0.0f : p * scale;
}

constexpr int64_t kLanes = 16;  // independent accumulators: one AVX-512 register

// softmax / log_softmax of one contiguous f32 row.
void softmax_row(const float* in, float* o, int64_t r, bool log) {
  float mv[kLanes];
  for (auto& m : mv) m = -std::numeric_limits<float>::infinity();
  int64_t k = 0;
  for (; k + kLanes <= r; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) mv[l] = in[k + l] > mv[l] ? in[k + l] : mv[l];
  float mx = -std::numeric_limits<float>::infinity();
  for (; k < r; ++k) mx = std::max(mx, in[k]);
  for (float m : mv) mx = std::max(mx, m);
  if (mx == -std::numeric_limits<float>::infinity()) mx = 0;  // a fully masked row stays finite-safe
  float sv[kLanes] = {};
  float tail = 0;
  k = 0;
  if (log) {
    for (; k + kLanes <= r; k += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) sv[l] += vexp(in[k + l] - mx);
    for (; k < r; ++k) tail += vexp(in[k] - mx);
  } else {
    for (; k + kLanes <= r; k += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) {
        const float e = vexp(in[k + l] - mx);
        o[k + l] = e;
        sv[l] += e;
      }
    for (; k < r; ++k) tail += o[k] = vexp(in[k] - mx);
  }
  double total = tail;
  for (float v : sv) total += v;
  if (log) {
    const float lse = mx + static_cast<float>(std::log(total));
    for (k = 0; k < r; ++k) o[k] = in[k] - lse;
  } else {
    const float inv = static_cast<float>(1.0 / total);
    for (k = 0; k < r; ++k) o[k] *= inv;
  }
}

// Backward of one contiguous f32 row from the saved output y.
void softmax_backward_row(const float* g, const float* y, float* d, int64_t r, bool log) {
  float sv[kLanes] = {};
  float tail = 0;
  int64_t k = 0;
  for (; k + kLanes <= r; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) sv[l] += log ? g[k + l] : g[k + l] * y[k + l];
  for (; k < r; ++k) tail += log ? g[k] : g[k] * y[k];
  double s = tail;
  for (float v : sv) s += v;
  const float st = static_cast<float>(s);
  if (log)
    for (k = 0; k < r; ++k) d[k] = g[k] - vexp(y[k]) * st;
  else
    for (k = 0; k < r; ++k) d[k] = y[k] * (g[k] - st);
}

}  // namespace

void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  dispatch_float(x.dtype(), "softmax", [&]<class T>() {
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    parallel_for(0, outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, r * inner)), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a) {
      if constexpr (std::is_same_v<T, float>) {
        if (inner == 1) {
          softmax_row(xp + a * r, op + a * r, r, log);
          continue;
        }
      }
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
      if constexpr (std::is_same_v<T, float>) {
        if (inner == 1) {
          softmax_backward_row(gp + a * r, yp + a * r, dp + a * r, r, log);
          continue;
        }
      }
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
