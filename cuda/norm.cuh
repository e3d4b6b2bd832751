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
// f32 rows of up to 4096 columns in whole quads (4 values) are held in
// registers (row_quads.cuh: a warp per row up to 1024, a block beyond), read
// once, the weight and bias gradients summed by the same pass
// (norm_warp_rows_*); x and the output (the output's gradient and a copy of
// x's) may be bf16; a lane's sums are f32, the row's double. Wider or ragged
// rows, and f64: one block per row, statistics in double, and the weight and
// bias gradients by a second pass over a block per 32-column tile and chunk
// of rows. Every reduction runs in a fixed order (block_reduce.cuh), chunks'
// partial sums added in chunk order: deterministic. Written on simt.cuh, so
// the emulator runs the same source (tests/cuda/norm_emulated_test.cpp).
#pragma once

#include "block_reduce.cuh"
#include "packs.cuh"
#include "row_quads.cuh"

namespace loom::norm_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

// The forward's operands: In is x's dtype, Out the output's, S everything
// else's (the statistics' arithmetic). The block-per-row kernels take one
// dtype throughout (Forward<T>); the register-resident ones f32 statistics
// with f32 or bf16 x and output (WarpForward).
template <class In, class Out, class S>
struct NormRows {
  const In* x;
  const S* residual;  // null: plain norm
  const S* weight;    // null: no scale
  const S* bias;      // null: no shift
  Out* out;
  S* sum;  // x + residual (when residual is given)
  S* mean;
  S* rstd;
  int64_t rows, cols;
  double eps;
  bool rms;
  unsigned threads;  // the block size, a multiple of 32
  // The kernel variant norm_forward_prefetch (register-resident rows only):
  // a warp that takes several rows asks L2 for its next one first.
  bool prefetch_next = false;
};
template <class T>
using Forward = NormRows<T, T, T>;
template <class In, class Out>
using WarpForward = NormRows<In, Out, float>;

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
    T* h = a.sum + row * n;
    transform_rows(in, a.residual + row * n, h, n, a.threads,
                   [](T x, T res, int64_t) { return static_cast<T>(x + res); });
    in = h;
    sync_block();  // h is read back below, perhaps by other threads (when the walks differ in alignment)
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
  transform_row(in, a.out + row * n, n, a.threads, [&](T x, int64_t j) {
    T v = static_cast<T>((static_cast<double>(x) - mu) * r);
    if (a.weight) v *= a.weight[j];
    if (a.bias) v += a.bias[j];
    return v;
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
  const T* gs = a.grad_sum ? a.grad_sum + row * n : nullptr;
  transform_rows(g, xr, a.grad_x + row * n, n, a.threads, [&](T gv, T xv, int64_t j) {
    double v = r * (dxhat(gv, j) - mean_d - (static_cast<double>(xv) - mu) * r * mean_dx);
    if (gs) v += value(gs, j);
    return static_cast<T>(v);
  });
}

// Adds slice s's values (at s * kColTile + lane) into slice 0's, in a fixed
// tree, for one array of kWeightGradThreads sums or two (b: null for one).
LOOM_SIMT_DEVICE void fold_slices(double* a, double* b, unsigned slice, unsigned t) {
  for (unsigned half = kRowSplit / 2; half > 0; half /= 2) {
    if (slice < half) {
      a[t] += a[t + half * kColTile];
      if (b) b[t] += b[t + half * kColTile];
    }
    sync_block();
  }
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
  fold_slices(sw, sb, slice, t);
  if (slice == 0 && j < a.cols) {
    a.partial[(chunk * 2) * a.cols + j] = sw[t];
    a.partial[(chunk * 2 + 1) * a.cols + j] = sb[t];
  }
}

// Then the chunks' partial sums, viewed as [chunks, 2 * cols] (the weight's
// sums, then the bias's): a block per 32 of those columns, thread (slice,
// lane) adding chunks slice, slice + 16, ... in order (eight loads in flight),
// then the slices folded as above. The warp-per-row backward leaves hundreds
// of chunks: a thread per column walking them alone took longer than the
// norm itself.
template <class T>
struct ChunkSums {
  const double* partial;  // [chunks, 2, cols]
  T* grad_w;              // null: not wanted
  T* grad_b;              // null: not wanted
  int64_t cols, chunks;
};

template <class T>
LOOM_SIMT_GLOBAL void norm_weight_grad_sum_kernel(ChunkSums<T> a) {
  double* sums = dynamic_shared<double>();
  const unsigned t = thread_x(), lane = t % kColTile, slice = t / kColTile;
  const int64_t width = 2 * a.cols, j = static_cast<int64_t>(block_x()) * kColTile + lane;
  double v = 0;
  if (j < width) {
    const double* col = a.partial + j;
    constexpr int kInFlight = 8;
    int64_t c = slice;
    for (; c + (kInFlight - 1) * kRowSplit < a.chunks; c += kInFlight * kRowSplit) {
      double batch[kInFlight];
      LOOM_SIMT_UNROLL
      for (int i = 0; i < kInFlight; ++i) batch[i] = col[(c + i * kRowSplit) * width];
      LOOM_SIMT_UNROLL
      for (int i = 0; i < kInFlight; ++i) v += batch[i];
    }
    for (; c < a.chunks; c += kRowSplit) v += col[c * width];
  }
  sums[t] = v;
  sync_block();
  fold_slices(sums, nullptr, slice, t);
  if (slice != 0 || j >= width) return;
  if (j < a.cols) {
    if (a.grad_w) a.grad_w[j] = static_cast<T>(sums[t]);
  } else if (a.grad_b) {
    a.grad_b[j - a.cols] = static_cast<T>(sums[t]);
  }
}

// Rows held in registers (row_quads.cuh), for f32 statistics: a warp per row
// up to 1024 columns, a block per row up to 4096. Under autocast the branch x
// may come in bf16 and the normalised output go out in bf16 (it feeds a
// product), so no cast runs either side of the norm; the arithmetic is f32
// throughout, as on the widened operands.

// One row of the forward (its lanes together).
template <int Warps, class In, class Out, int Quads>
LOOM_SIMT_DEVICE void norm_warp_row(const WarpForward<In, Out>& a, const Quad<float> (&w)[Quads],
                                    const Quad<float> (&b)[Quads], int64_t row, unsigned lane) {
  constexpr int kLanes = 32 * Warps;
  const int64_t n = a.cols, quads = n / 4;
  Quad<float> v[Quads];
  load_lane_quads<kLanes>(a.x + row * n, quads, lane, v);
  if (a.residual) {
    Quad<float> r[Quads];
    load_lane_quads<kLanes>(a.residual + row * n, quads, lane, r);
    LOOM_SIMT_UNROLL
    for (int p = 0; p < Quads; ++p) {
      LOOM_SIMT_UNROLL
      for (int k = 0; k < 4; ++k) v[p].v[k] += r[p].v[k];
    }
    store_lane_quads<kLanes>(a.sum + row * n, quads, lane, v);
  }
  float mu = 0;
  if (!a.rms) {
    float s = 0;
    for_lane_values<kLanes>(v, quads, lane, [&](float x, int, int) { s += x; });
    mu = row_mean<Warps>(s, n);
  }
  float ss = 0;
  for_lane_values<kLanes>(v, quads, lane, [&](float x, int, int) { ss += (x - mu) * (x - mu); });
  const float r = static_cast<float>(1.0 / ::sqrt(static_cast<double>(row_mean<Warps>(ss, n)) + a.eps));
  if (lane == 0) {
    a.mean[row] = mu;
    a.rstd[row] = r;
  }
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) {
      float y = (v[p].v[k] - mu) * r;
      if (a.weight) y *= w[p].v[k];
      if (a.bias) y += b[p].v[k];
      v[p].v[k] = y;
    }
  }
  store_lane_quads<kLanes>(a.out + row * n, quads, lane, v);
}

// Warp-wide rows: at most kWarpRowBlocks blocks, each warp taking rows warp,
// warp + (all the grid's warps), ..., the weight and bias read once per warp
// (a bf16 768-wide norm ran 15% slower reading them again for every row).
// Block-wide rows: a block per row; looping there, the blocks that missed the
// first wave ran a second one almost alone.
inline constexpr int64_t kWarpRowBlocks = 512;
inline int64_t warp_rows_groups(int warps) { return kWarpRowWarps / warps; }  // row groups per block
inline int64_t warp_rows_forward_blocks(int64_t rows, int warps) {
  const int64_t groups = warp_rows_groups(warps), blocks = (rows + groups - 1) / groups;
  return warps == 1 && blocks > kWarpRowBlocks ? kWarpRowBlocks : blocks;
}

template <class In, class Out, int Warps, int Quads>
LOOM_SIMT_GLOBAL void norm_warp_rows_kernel(WarpForward<In, Out> a) {
  constexpr int kLanes = 32 * Warps, kGroups = kWarpRowWarps / Warps;
  const unsigned lane = thread_x() % kLanes;
  const int64_t quads = a.cols / 4;
  const int64_t step = static_cast<int64_t>(grid_dim_x()) * kGroups;
  Quad<float> w[Quads], b[Quads];
  load_lane_quads<kLanes>(a.weight, quads, lane, w);
  load_lane_quads<kLanes>(a.bias, quads, lane, b);
  // A block-wide row's bound is the same for all its threads: each reaches
  // the barriers of row_mean.
  for (int64_t row = static_cast<int64_t>(block_x()) * kGroups + thread_x() / kLanes; row < a.rows; row += step) {
    if (a.prefetch_next && row + step < a.rows) {  // its loads then wait on L2, not DRAM
      prefetch_lane_quads<kLanes, Quads>(a.x + (row + step) * a.cols, quads, lane);
      prefetch_lane_quads<kLanes, Quads>(a.residual ? a.residual + (row + step) * a.cols : nullptr, quads, lane);
    }
    norm_warp_row<Warps>(a, w, b, row, lane);
  }
}

// G: the dtype of the output's gradient (the output's, f32 or bf16); x (what
// was normalised), grad_sum and grad_x are f32. grad_x_half, when given, gets
// grad_x rounded to bf16 too: the gradient of a bf16 branch x of the fused
// residual norm, whose f32 residual takes grad_x.
template <class G>
struct WarpBackward {
  const G* grad;
  const float* grad_sum;  // added into grad_x (null: none)
  const float* x;
  const float* weight;  // null: ones
  const float* mean;
  const float* rstd;
  float* grad_x;            // null: not wanted
  simt::bf16* grad_x_half;  // null: not wanted
  double* partial;          // [blocks, 2, cols]: sums of grad * xhat and of grad; null: not wanted
  int64_t rows, cols;
  int64_t chunk_rows;  // rows per block: group g takes first + g, first + g + groups, ...
  bool rms;
};

// The backward's rows per block: a row group per row up to kWarpRowBlocks
// blocks, and at most kWarpRowMaxRows rows a row group (a lane sums its
// columns' weight gradients in f32 over its group's rows; the blocks' sums
// are double).
inline constexpr int64_t kWarpRowMaxRows = 64;
inline int64_t warp_rows_backward_chunk(int64_t rows, int warps) {
  const int64_t groups = warp_rows_groups(warps);
  int64_t blocks = (rows + groups - 1) / groups;
  if (blocks > kWarpRowBlocks) blocks = kWarpRowBlocks;
  const int64_t most = groups * kWarpRowMaxRows;
  if ((rows + blocks - 1) / blocks > most) blocks = (rows + most - 1) / most;
  return (rows + blocks - 1) / blocks;
}
// Shared memory of the backward: warp-wide rows add the warps' column sums
// there ([warps, 2, cols] of f32); block-wide rows need block_sum's scratch.
inline size_t warp_rows_backward_shared_bytes(int64_t cols, int warps, bool sums) {
  if (warps != 1) return row_quads_shared_bytes(warps);
  return sums ? static_cast<size_t>(kWarpRowWarps) * 2 * static_cast<size_t>(cols) * sizeof(float) : 0;
}

// grad_x of the block's rows, a row group per row; then the block's weight
// and bias gradient sums (warp-wide rows: the warps' added in warp order).
//
// kSharedSums (the kernel variant norm_backward_shared_sums; warp-wide rows
// only): each warp keeps its lanes' column sums in its slice of shared
// memory, where they end up anyway, instead of 2 * Quads quads of registers
// a lane (at 768 columns the kernel held 210 registers a thread). The same
// additions in the same order, though the compiler may contract other ones
// into fused multiply-adds, so the last bits may differ.
template <class G, int Warps, int Quads, bool kSharedSums = false>
LOOM_SIMT_GLOBAL void norm_warp_rows_backward_kernel(WarpBackward<G> a) {
  static_assert(!kSharedSums || Warps == 1, "shared column sums are for warp-wide rows");
  constexpr int kLanes = 32 * Warps, kGroups = kWarpRowWarps / Warps;
  const unsigned lane = thread_x() % kLanes, group = thread_x() / kLanes;
  const int64_t n = a.cols, quads = n / 4;
  const int64_t first = static_cast<int64_t>(block_x()) * a.chunk_rows;
  const int64_t last = first + a.chunk_rows < a.rows ? first + a.chunk_rows : a.rows;
  const bool sums = a.partial != nullptr, wants_x = a.grad_x || a.grad_x_half;
  Quad<float> w[Quads], gw[Quads], gb[Quads];
  load_lane_quads<kLanes>(a.weight, quads, lane, w);
  load_lane_quads<kLanes, Quads, float>(nullptr, quads, lane, gw);  // zeros
  load_lane_quads<kLanes, Quads, float>(nullptr, quads, lane, gb);
  // Warp-wide rows: this warp's [2, cols] of the column sums' [warps, 2,
  // cols] in shared memory, each lane touching only its own quads (so no
  // barrier until the warps' sums are added). kSharedSums sums into it
  // from the start; otherwise the registers are stored there at the end.
  float* const mine = dynamic_shared<float>() + static_cast<int64_t>(group) * 2 * n;
  if (kSharedSums && sums) {
    store_lane_quads<kLanes>(mine, quads, lane, gw);  // zeros
    store_lane_quads<kLanes>(mine + n, quads, lane, gb);
  }
  for (int64_t row = first + group; row < last; row += kGroups) {  // the same bound block-wide: see the forward
    Quad<float> g[Quads], x[Quads], gs[Quads];
    load_lane_quads<kLanes>(a.grad + row * n, quads, lane, g);
    load_lane_quads<kLanes>(a.x + row * n, quads, lane, x);
    load_lane_quads<kLanes>(a.grad_sum ? a.grad_sum + row * n : nullptr, quads, lane, gs);
    const float mu = a.mean[row], r = a.rstd[row];
    auto dxhat = [&](int p, int k) { return a.weight ? g[p].v[k] * w[p].v[k] : g[p].v[k]; };
    float sum_d = 0, sum_dx = 0;
    for_lane_values<kLanes>(g, quads, lane, [&](float gv, int p, int k) {
      const float d = dxhat(p, k), xhat = (x[p].v[k] - mu) * r;
      sum_d += d;
      sum_dx += d * xhat;
      if (sums && !kSharedSums) {
        gw[p].v[k] += gv * xhat;
        gb[p].v[k] += gv;
      }
    });
    if constexpr (kSharedSums) {
      if (sums) {
        LOOM_SIMT_UNROLL
        for (int p = 0; p < Quads; ++p) {
          const int64_t q = lane + kLanes * p;
          if (q >= quads) continue;
          Quad<float> sw = load_quad(mine, q), sb = load_quad(mine + n, q);
          LOOM_SIMT_UNROLL
          for (int k = 0; k < 4; ++k) {
            const float xhat = (x[p].v[k] - mu) * r;
            sw.v[k] += g[p].v[k] * xhat;
            sb.v[k] += g[p].v[k];
          }
          store_quad(mine, q, sw);
          store_quad(mine + n, q, sb);
        }
      }
    }
    if (!wants_x) continue;
    const float mean_d = a.rms ? 0.0f : row_mean<Warps>(sum_d, n), mean_dx = row_mean<Warps>(sum_dx, n);
    LOOM_SIMT_UNROLL
    for (int p = 0; p < Quads; ++p) {
      LOOM_SIMT_UNROLL
      for (int k = 0; k < 4; ++k)
        x[p].v[k] = r * (dxhat(p, k) - mean_d - (x[p].v[k] - mu) * r * mean_dx) + gs[p].v[k];
    }
    if (a.grad_x) store_lane_quads<kLanes>(a.grad_x + row * n, quads, lane, x);
    if (a.grad_x_half) store_lane_quads<kLanes>(a.grad_x_half + row * n, quads, lane, x);
  }
  if (!sums) return;  // the whole block leaves: no barrier follows
  double* out = a.partial + static_cast<int64_t>(block_x()) * 2 * n;
  if constexpr (Warps != 1) {  // each lane owns its columns over all of the block's rows
    LOOM_SIMT_UNROLL
    for (int p = 0; p < Quads; ++p) {
      const int64_t q = lane + kLanes * p;
      if (q >= quads) continue;
      LOOM_SIMT_UNROLL
      for (int k = 0; k < 4; ++k) {
        out[q * 4 + k] = static_cast<double>(gw[p].v[k]);
        out[n + q * 4 + k] = static_cast<double>(gb[p].v[k]);
      }
    }
    return;
  }
  float* shared = dynamic_shared<float>();  // [warps, 2, cols]
  if constexpr (!kSharedSums) {
    store_lane_quads<kLanes>(mine, quads, lane, gw);
    store_lane_quads<kLanes>(mine + n, quads, lane, gb);
  }
  sync_block();
  for (int64_t j = thread_x(); j < 2 * n; j += kWarpRowThreads) {
    double total = 0;
    for (unsigned v = 0; v < kWarpRowWarps; ++v) total += static_cast<double>(shared[v * 2 * n + j]);
    out[j] = total;
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::norm_kernels
