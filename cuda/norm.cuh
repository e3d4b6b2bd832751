// LayerNorm and RMSNorm over the rows of a contiguous [rows, cols] tensor,
// optionally fused with the residual add before them (the pre-norm block's
// h = x + residual is written out and normalised in the same pass):
//   xhat = (h - mean) * rstd,  y = xhat * w + b
//   dh = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) + g_h   (LayerNorm)
//   dh = rstd * (dxhat - xhat * mean(dxhat * xhat)) + g_h                 (RMSNorm)
// with dxhat = g_y * w and g_h the gradient that reached h directly.
// Floor, per element: forward reads x (+ residual) and writes y (+ h): 2
// (fused: 4) values, where an add then a norm move 5 and launch twice; ~8
// FLOPs. Backward reads g_y, h (+ g_h) and writes dh: 3 (fused: 4) values
// where the unfused norm backward and gradient add move 6; the weight and
// bias gradients read g_y and h once more.
// One block per row, statistics in double reduced in a fixed order
// (block_reduce.cuh); weight
// and bias gradients: one block per 32-column tile, 16 row slices, summed in
// a fixed order. Deterministic. Written on simt.cuh, so the emulator runs
// the same source (tests/cuda/norm_emulated_test.cpp).
#pragma once

#include "block_reduce.cuh"

namespace loom::norm_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

template <class T>
struct Forward {
  const T* x;
  const T* residual;  // null: plain norm
  const T* weight;    // null: no scale
  const T* bias;      // null: no shift
  T* out;
  T* sum;  // x + residual (when residual is given)
  T* mean;
  T* rstd;
  int64_t cols;
  double eps;
  bool rms;
  unsigned threads;  // the block size, a multiple of 32
};

template <class T>
struct Backward {
  const T* grad;      // of the norm's output
  const T* grad_sum;  // of the residual sum, added into grad_x (null: none)
  const T* x;         // what was normalised
  const T* weight;    // null: ones
  const T* mean;
  const T* rstd;
  T* grad_x;
  int64_t cols;
  bool rms;
  unsigned threads;
};

template <class T>
struct WeightGrad {
  const T* grad;
  const T* x;
  const T* mean;
  const T* rstd;
  T* grad_w;  // null: not wanted
  T* grad_b;  // null: not wanted
  int64_t rows, cols;
};

inline constexpr int kColTile = 32, kRowSplit = 16;
inline constexpr unsigned kWeightGradThreads = kColTile * kRowSplit;
inline constexpr size_t kWeightGradSharedBytes = 2 * kWeightGradThreads * sizeof(double);

template <class T>
LOOM_SIMT_DEVICE double value(const T* p, int64_t j) {
  return static_cast<double>(p[j]);
}

// One block per row.
template <class T>
LOOM_SIMT_GLOBAL void norm_rows_kernel(Forward<T> a) {
  const int64_t row = block_x(), n = a.cols;
  const unsigned t = thread_x();
  const T* in = a.x + row * n;
  if (a.residual) {
    // Each thread reads back only the columns it wrote: no barrier needed.
    const T* res = a.residual + row * n;
    T* h = a.sum + row * n;
    for (int64_t j = t; j < n; j += a.threads) h[j] = static_cast<T>(in[j] + res[j]);
    in = h;
  }
  double mu = 0;
  if (!a.rms) {
    double s = 0;
    for (int64_t j = t; j < n; j += a.threads) s += value(in, j);
    mu = block_sum(s, a.threads) / static_cast<double>(n);
  }
  double ss = 0;
  for (int64_t j = t; j < n; j += a.threads) {
    const double d = value(in, j) - mu;
    ss += d * d;
  }
  const double r = 1.0 / ::sqrt(block_sum(ss, a.threads) / static_cast<double>(n) + a.eps);
  if (t == 0) {
    a.mean[row] = static_cast<T>(mu);
    a.rstd[row] = static_cast<T>(r);
  }
  T* o = a.out + row * n;
  for (int64_t j = t; j < n; j += a.threads) {
    T v = static_cast<T>((value(in, j) - mu) * r);
    if (a.weight) v *= a.weight[j];
    if (a.bias) v += a.bias[j];
    o[j] = v;
  }
}

// One block per row: grad_x.
template <class T>
LOOM_SIMT_GLOBAL void norm_rows_backward_kernel(Backward<T> a) {
  const int64_t row = block_x(), n = a.cols;
  const unsigned t = thread_x();
  const T* g = a.grad + row * n;
  const T* xr = a.x + row * n;
  const double mu = value(a.mean, row), r = value(a.rstd, row);
  auto dxhat = [&](int64_t j) { return a.weight ? value(g, j) * value(a.weight, j) : value(g, j); };
  double sum_d = 0, sum_dx = 0;
  for (int64_t j = t; j < n; j += a.threads) {
    const double d = dxhat(j);
    sum_d += d;
    sum_dx += d * (value(xr, j) - mu) * r;
  }
  sum_d = block_sum(sum_d, a.threads);
  sum_dx = block_sum(sum_dx, a.threads);
  const double mean_d = a.rms ? 0.0 : sum_d / static_cast<double>(n);
  const double mean_dx = sum_dx / static_cast<double>(n);
  T* d = a.grad_x + row * n;
  const T* gs = a.grad_sum ? a.grad_sum + row * n : nullptr;
  for (int64_t j = t; j < n; j += a.threads) {
    double v = r * (dxhat(j) - mean_d - (value(xr, j) - mu) * r * mean_dx);
    if (gs) v += value(gs, j);
    d[j] = static_cast<T>(v);
  }
}

// grad_w[j] = sum_i g[i, j] * xhat[i, j], grad_b[j] = sum_i g[i, j]: one
// block per 32 columns; thread (slice, lane) sums rows slice, slice + 16, ...
template <class T>
LOOM_SIMT_GLOBAL void norm_weight_grad_kernel(WeightGrad<T> a) {
  double* sw = dynamic_shared<double>();
  double* sb = sw + kWeightGradThreads;
  const unsigned t = thread_x(), lane = t % kColTile, slice = t / kColTile;
  const int64_t j = static_cast<int64_t>(block_x()) * kColTile + lane;
  double aw = 0, ab = 0;
  if (j < a.cols) {
    for (int64_t i = slice; i < a.rows; i += kRowSplit) {
      const double gv = value(a.grad, i * a.cols + j);
      aw += gv * (value(a.x, i * a.cols + j) - value(a.mean, i)) * value(a.rstd, i);
      ab += gv;
    }
  }
  sw[t] = aw;
  sb[t] = ab;
  sync_block();
  for (unsigned half = kRowSplit / 2; half > 0; half /= 2) {
    if (slice < half) {
      sw[t] += sw[t + half * kColTile];
      sb[t] += sb[t + half * kColTile];
    }
    sync_block();
  }
  if (slice == 0 && j < a.cols) {
    if (a.grad_w) a.grad_w[j] = static_cast<T>(sw[t]);
    if (a.grad_b) a.grad_b[j] = static_cast<T>(sb[t]);
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::norm_kernels
