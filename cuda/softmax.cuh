// softmax / log_softmax along the middle axis of a contiguous [outer, r, inner],
// and their backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// Floor: forward reads x and writes out (2 * numel * itemsize bytes), ~numel
// exps; backward reads g and y and writes dx (3 * numel * itemsize).
// inner == 1 (the common last-dim case): f32 rows of up to 4096 in whole
// quads held in registers, a warp or a block per row (row_quads.cuh); other
// rows one block each, walked once per pass, block reductions
// (block_reduce.cuh). inner > 1: one thread per (outer, inner) column walking
// r (coalesced across the columns). Row sums accumulate in double, as on the
// CPU (in registers: each lane's few values in f32 first); a row that is all
// -inf (fully masked) stays finite-safe. Written on
// simt.cuh, so the emulator runs it (tests/cuda/softmax_loss_emulated_test.cpp).
#pragma once

#include <cmath>

#include "block_reduce.cuh"
#include "pointwise_math.cuh"
#include "row_quads.cuh"

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

// f32 rows (inner == 1) of up to 4096 values in whole quads, held in
// registers (row_quads.cuh): each row read once and written once, where the
// block-per-row kernels above read it three times (maximum, sum, output).
template <int Warps, int Quads>
LOOM_SIMT_GLOBAL void softmax_quad_rows_kernel(Rows<float> a) {
  constexpr int kLanes = 32 * Warps, kGroups = kWarpRowWarps / Warps;
  const int64_t row = static_cast<int64_t>(block_x()) * kGroups + thread_x() / kLanes;
  if (row >= a.outer) return;  // whole groups leave together (a block-wide row: the whole block)
  const unsigned lane = thread_x() % kLanes;
  const int64_t quads = a.r / 4;
  Quad<float> v[Quads];
  load_lane_quads<kLanes>(a.x + row * a.r, quads, lane, v);
  float m = neg_inf<float>();
  for_lane_values<kLanes>(v, quads, lane, [&](float x, int, int) { m = max_nan(m, x); });
  float mx = row_max<Warps>(m);
  if (mx == neg_inf<float>()) mx = 0;  // a fully masked row: exp(-inf - 0) = 0, not NaN
  float e = 0;
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    if (lane + kLanes * p >= quads) continue;
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) {
      const float ex = m_exp(v[p].v[k] - mx);
      e += ex;
      if (!a.log) v[p].v[k] = ex;
    }
  }
  const double total = row_sum<Warps>(e);
  const float lse = mx + static_cast<float>(::log(total)), inv = static_cast<float>(1.0 / total);
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) v[p].v[k] = a.log ? v[p].v[k] - lse : v[p].v[k] * inv;
  }
  store_lane_quads<kLanes>(a.out + row * a.r, quads, lane, v);
}

template <int Warps, int Quads>
LOOM_SIMT_GLOBAL void softmax_backward_quad_rows_kernel(Rows<float> a) {
  constexpr int kLanes = 32 * Warps, kGroups = kWarpRowWarps / Warps;
  const int64_t row = static_cast<int64_t>(block_x()) * kGroups + thread_x() / kLanes;
  if (row >= a.outer) return;
  const unsigned lane = thread_x() % kLanes;
  const int64_t quads = a.r / 4;
  Quad<float> g[Quads], y[Quads];
  load_lane_quads<kLanes>(a.x + row * a.r, quads, lane, g);
  load_lane_quads<kLanes>(a.y + row * a.r, quads, lane, y);
  float s = 0;
  for_lane_values<kLanes>(g, quads, lane, [&](float gv, int p, int k) { s += a.log ? gv : gv * y[p].v[k]; });
  const float st = static_cast<float>(row_sum<Warps>(s));
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) g[p].v[k] = softmax_grad(a.log, g[p].v[k], y[p].v[k], st);
  }
  store_lane_quads<kLanes>(a.out + row * a.r, quads, lane, g);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::softmax_kernels
