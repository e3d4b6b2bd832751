// softmax / log_softmax along the middle axis of a contiguous [outer, r, inner],
// and their backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// Floor: forward reads x and writes out (2 * numel * itemsize bytes), ~numel
// exps; backward reads g and y and writes dx (3 * numel * itemsize).
// inner == 1 (the common last-dim case): one block per row, block reductions
// (block_reduce.cuh). inner > 1: one thread per (outer, inner) column walking
// r (coalesced across the columns). Row sums accumulate in double, as on the
// CPU; a row that is all -inf (fully masked) stays finite-safe. Written on
// simt.cuh, so the emulator runs it (tests/cuda/softmax_loss_emulated_test.cpp).
#pragma once

#include <cmath>

#include "block_reduce.cuh"
#include "pointwise_math.cuh"

namespace loom::softmax_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;
using pointwise::m_exp;

inline constexpr unsigned kColumnThreads = 256;

template <class T>
LOOM_SIMT_DEVICE T neg_inf() {
  return -static_cast<T>(INFINITY);
}

template <class T>
struct Rows {
  const T* x;  // forward: x; backward: g
  const T* y;  // backward: the saved output
  T* out;
  int64_t outer, r, inner;
  bool log;
  unsigned threads;  // per block (rows), or blocks in the grid (columns)
};

// One block per row (inner == 1).
template <class T>
LOOM_SIMT_GLOBAL void softmax_rows_kernel(Rows<T> a) {
  const int64_t row = block_x();
  const T* in = a.x + row * a.r;
  T* o = a.out + row * a.r;
  T mx = neg_inf<T>();
  for_each_in_row(in, a.r, a.threads, [&](T v, int64_t) { mx = max_nan(mx, v); });
  mx = block_max(mx, a.threads);
  if (mx == neg_inf<T>()) mx = 0;  // a fully masked row: exp(-inf - 0) = 0, not NaN
  double total = 0;
  for_each_in_row(in, a.r, a.threads, [&](T v, int64_t) { total += static_cast<double>(m_exp(v - mx)); });
  total = block_sum(total, a.threads);
  if (a.log) {
    const T lse = mx + static_cast<T>(::log(total));
    transform_row(in, o, a.r, a.threads, [&](T v, int64_t) { return v - lse; });
  } else {
    const T inv = static_cast<T>(1.0 / total);
    transform_row(in, o, a.r, a.threads, [&](T v, int64_t) { return m_exp(v - mx) * inv; });
  }
}

// One thread per (outer, inner) column, grid-stride (inner > 1).
template <class T>
LOOM_SIMT_GLOBAL void softmax_columns_kernel(Rows<T> a) {
  const int64_t step = static_cast<int64_t>(a.threads) * kColumnThreads;
  for (int64_t col = static_cast<int64_t>(block_x()) * kColumnThreads + thread_x(); col < a.outer * a.inner;
       col += step) {
    const int64_t outer = col / a.inner, c = col - outer * a.inner;
    const T* in = a.x + outer * a.r * a.inner + c;
    T* o = a.out + outer * a.r * a.inner + c;
    T mx = neg_inf<T>();
    for (int64_t k = 0; k < a.r; ++k) mx = max_nan(mx, in[k * a.inner]);
    if (mx == neg_inf<T>()) mx = 0;
    double total = 0;
    for (int64_t k = 0; k < a.r; ++k) total += static_cast<double>(m_exp(in[k * a.inner] - mx));
    if (a.log) {
      const T lse = mx + static_cast<T>(::log(total));
      for (int64_t k = 0; k < a.r; ++k) o[k * a.inner] = in[k * a.inner] - lse;
    } else {
      const T inv = static_cast<T>(1.0 / total);
      for (int64_t k = 0; k < a.r; ++k) o[k * a.inner] = m_exp(in[k * a.inner] - mx) * inv;
    }
  }
}

// The backward's per-element term, given s = sum(g * y) (softmax) or sum(g).
template <class T>
LOOM_SIMT_DEVICE T softmax_grad(bool log, T g, T y, T s) {
  return log ? g - m_exp(y) * s : y * (g - s);
}

template <class T>
LOOM_SIMT_DEVICE double grad_term(bool log, T g, T y) {
  return log ? static_cast<double>(g) : static_cast<double>(g) * static_cast<double>(y);
}

template <class T>
LOOM_SIMT_GLOBAL void softmax_backward_rows_kernel(Rows<T> a) {
  const int64_t base = static_cast<int64_t>(block_x()) * a.r;
  double s = 0;
  for_each_in_rows(a.x + base, a.y + base, a.r, a.threads, [&](T g, T y, int64_t) { s += grad_term(a.log, g, y); });
  const T st = static_cast<T>(block_sum(s, a.threads));
  transform_rows(a.x + base, a.y + base, a.out + base, a.r, a.threads,
                 [&](T g, T y, int64_t) { return softmax_grad(a.log, g, y, st); });
}

template <class T>
LOOM_SIMT_GLOBAL void softmax_backward_columns_kernel(Rows<T> a) {
  const int64_t step = static_cast<int64_t>(a.threads) * kColumnThreads;
  for (int64_t col = static_cast<int64_t>(block_x()) * kColumnThreads + thread_x(); col < a.outer * a.inner;
       col += step) {
    const int64_t outer = col / a.inner, c = col - outer * a.inner;
    const int64_t base = outer * a.r * a.inner + c;
    double s = 0;
    for (int64_t k = 0; k < a.r; ++k) s += grad_term(a.log, a.x[base + k * a.inner], a.y[base + k * a.inner]);
    const T st = static_cast<T>(s);
    for (int64_t k = 0; k < a.r; ++k) {
      const int64_t i = base + k * a.inner;
      a.out[i] = softmax_grad(a.log, a.x[i], a.y[i], st);
    }
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::softmax_kernels
