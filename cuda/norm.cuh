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
// (block_reduce.cuh); weight and bias gradients: a block per 32-column tile
// and chunk of rows, 16 row slices, then the chunks' partial sums added in
// chunk order. Deterministic. Written on simt.cuh, so the emulator runs
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
  int64_t chunk_rows;  // rows each block sums (one chunk of the rows)
  int64_t chunks;      // ceil(rows / chunk_rows), at least 1
  double* partial;     // workspace [chunks, 2, cols]: each chunk's sums of grad * xhat and of grad
};

inline constexpr int kColTile = 32, kRowSplit = 16;
inline constexpr unsigned kWeightGradThreads = kColTile * kRowSplit;
inline constexpr size_t kWeightGradSharedBytes = 2 * kWeightGradThreads * sizeof(double);
// Rows per chunk of the weight gradient: enough blocks (column tiles x
// chunks) to fill the device, kTargetBlocks (24 column tiles alone, at 768
// columns, left most multiprocessors idle and each thread walking 512 rows
// one load after another); chunks of at least kMinChunkRows rows, and at
// most kMaxChunks of them, so the workspace stays [kMaxChunks, 2, cols].
inline constexpr int64_t kMinChunkRows = 256, kMaxChunks = 256, kTargetBlocks = 2048;
inline int64_t weight_grad_chunk_rows(int64_t rows, int64_t cols) {
  const int64_t tiles = (cols + kColTile - 1) / kColTile;
  int64_t chunks = (kTargetBlocks + tiles - 1) / tiles;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  const int64_t spread = (rows + chunks - 1) / chunks;
  return spread > kMinChunkRows ? spread : kMinChunkRows;
}

template <class T>
LOOM_SIMT_DEVICE double value(const T* p, int64_t j) {
  return static_cast<double>(p[j]);
}

// One block per row.
template <class T>
LOOM_SIMT_GLOBAL void norm_rows_kernel(Forward<T> a) {
  const int64_t row = block_x(), n = a.cols;
  const T* in = a.x + row * n;
  if (a.residual) {
    // Each thread reads back only the columns it wrote: no barrier needed.
    T* h = a.sum + row * n;
    for_each_in_rows(in, a.residual + row * n, n, a.threads,
                     [&](T x, T res, int64_t j) { h[j] = static_cast<T>(x + res); });
    in = h;
  }
  double mu = 0;
  if (!a.rms) {
    double s = 0;
    for_each_in_row(in, n, a.threads, [&](T x, int64_t) { s += static_cast<double>(x); });
    mu = block_sum(s, a.threads) / static_cast<double>(n);
  }
  double ss = 0;
  for_each_in_row(in, n, a.threads, [&](T x, int64_t) {
    const double d = static_cast<double>(x) - mu;
    ss += d * d;
  });
  const double r = 1.0 / ::sqrt(block_sum(ss, a.threads) / static_cast<double>(n) + a.eps);
  if (thread_x() == 0) {
    a.mean[row] = static_cast<T>(mu);
    a.rstd[row] = static_cast<T>(r);
  }
  T* o = a.out + row * n;
  for_each_in_row(in, n, a.threads, [&](T x, int64_t j) {
    T v = static_cast<T>((static_cast<double>(x) - mu) * r);
    if (a.weight) v *= a.weight[j];
    if (a.bias) v += a.bias[j];
    o[j] = v;
  });
}

// One block per row: grad_x.
template <class T>
LOOM_SIMT_GLOBAL void norm_rows_backward_kernel(Backward<T> a) {
  const int64_t row = block_x(), n = a.cols;
  const T* g = a.grad + row * n;
  const T* xr = a.x + row * n;
  const double mu = value(a.mean, row), r = value(a.rstd, row);
  auto dxhat = [&](T gv, int64_t j) {
    return a.weight ? static_cast<double>(gv) * value(a.weight, j) : static_cast<double>(gv);
  };
  double sum_d = 0, sum_dx = 0;
  for_each_in_rows(g, xr, n, a.threads, [&](T gv, T xv, int64_t j) {
    const double d = dxhat(gv, j);
    sum_d += d;
    sum_dx += d * (static_cast<double>(xv) - mu) * r;
  });
  sum_d = block_sum(sum_d, a.threads);
  sum_dx = block_sum(sum_dx, a.threads);
  const double mean_d = a.rms ? 0.0 : sum_d / static_cast<double>(n);
  const double mean_dx = sum_dx / static_cast<double>(n);
  T* d = a.grad_x + row * n;
  const T* gs = a.grad_sum ? a.grad_sum + row * n : nullptr;
  for_each_in_rows(g, xr, n, a.threads, [&](T gv, T xv, int64_t j) {
    double v = r * (dxhat(gv, j) - mean_d - (static_cast<double>(xv) - mu) * r * mean_dx);
    if (gs) v += value(gs, j);
    d[j] = static_cast<T>(v);
  });
}

// grad_w[j] = sum_i g[i, j] * xhat[i, j], grad_b[j] = sum_i g[i, j], in two
// fixed-order passes. First a block per (32 columns, chunk of rows): thread
// (slice, lane) sums the chunk's rows slice, slice + 16, ..., the block adds
// its 16 slices and writes the chunk's partial sums.
template <class T>
LOOM_SIMT_GLOBAL void norm_weight_grad_kernel(WeightGrad<T> a) {
  double* sw = dynamic_shared<double>();
  double* sb = sw + kWeightGradThreads;
  const unsigned t = thread_x(), lane = t % kColTile, slice = t / kColTile;
  const int64_t j = static_cast<int64_t>(block_x()) * kColTile + lane;
  const int64_t chunk = block_y(), first = chunk * a.chunk_rows;
  const int64_t last = first + a.chunk_rows < a.rows ? first + a.chunk_rows : a.rows;
  double aw = 0, ab = 0;
  if (j < a.cols) {
    for (int64_t i = first + slice; i < last; i += kRowSplit) {
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
    a.partial[(chunk * 2) * a.cols + j] = sw[t];
    a.partial[(chunk * 2 + 1) * a.cols + j] = sb[t];
  }
}

// Then a thread per column adds the chunks' partial sums in chunk order.
template <class T>
LOOM_SIMT_GLOBAL void norm_weight_grad_sum_kernel(WeightGrad<T> a) {
  const int64_t j = static_cast<int64_t>(block_x()) * block_dim_x() + thread_x();
  if (j >= a.cols) return;
  double w = 0, b = 0;
  for (int64_t c = 0; c < a.chunks; ++c) {
    w += a.partial[(c * 2) * a.cols + j];
    b += a.partial[(c * 2 + 1) * a.cols + j];
  }
  if (a.grad_w) a.grad_w[j] = static_cast<T>(w);
  if (a.grad_b) a.grad_b[j] = static_cast<T>(b);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::norm_kernels
