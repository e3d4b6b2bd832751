// Flash attention: softmax(scale * q k^T + mask) v without ever holding the
// [Lq, Lk] score matrix in memory, forward and backward.
//
// Floor (BH heads, Lq queries, Lk keys, head dim D; halve the FLOPs when
// causal): forward 4·BH·Lq·Lk·D FLOPs, reading q, k, v and writing the output
// and the row log-sum-exp, (2·Lq + 2·Lk)·BH·D elements. Backward as written
// here 14·BH·Lq·Lk·D FLOPs (S and dP are recomputed once more in the dQ pass,
// which keeps every gradient deterministic: no atomics), reading q, k, v,
// out, dout and writing dq, dk, dv. Compute-bound for any real sequence.
//
// The scheme (the FlashAttention-2 structure): a block of four warps owns 64
// rows of one head; each warp owns 16 of them. The block walks the other
// side's rows 64 at a time through shared memory. Every product is a warp's
// [16 x N] = [16 x K] · [K x N] tile product (`warp_product`): on bf16 inputs
// the tensor cores (wmma m16n16k16, fp32 accumulation); on f32 inputs plain
// fp32 FMAs. Softmax statistics and accumulators stay fp32 in shared memory.
//   forward  (block = 64 queries): S = q kᵀ, online softmax (running max m,
//            running sum l, rescale of the output rows), O += P v; writes
//            out = O / l and lse = m + log l.
//   backward: delta_i = Σ_c dout_ic · out_ic (one warp per row); then
//            a block per 64 keys walks the queries:  Pᵀ = exp(scale·k qᵀ −
//            lse), dV += Pᵀ dout, dPᵀ = v doutᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − delta),
//            dK += scale · dSᵀ q;
//            a block per 64 queries walks the keys: dQ += scale · dS k.
//
// Masks: `causal` (key j visible to query i when j <= i + Lk − Lq, aligned
// at the end as for a KV cache) and an optional per-key keep mask
// [BH, Lk] (padding). A row that sees no key gets NaN, like the composed
// softmax of a row of −inf.
//
// For bf16 with head dims 16, 32, 64 and 128 the forward and the backward
// passes run register-resident kernels instead (flash_forward_mma.cuh,
// flash_backward_mma.cuh); this file keeps them for f32 and other head dims.
//
// This header compiles under nvcc (cuda/flash_attention.cu launches it on the
// device) and under a host compiler, where cuda/simt.cuh runs the very same
// kernels on a SIMT emulator for the tests.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "simt.cuh"


namespace loom::flash {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr int kWarps = 4;
inline constexpr int kWarpRows = 16;                  // rows per warp (one wmma tile)
inline constexpr int kBlockRows = kWarps * kWarpRows;  // rows a block owns
inline constexpr int kTileRows = 64;                  // rows of the other side per step
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kMaxHeadDim = 256;

struct Args {
  // [bh, lq, d], [bh, lk, d], [bh, lk, d], contiguous, 16-byte aligned
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const uint8_t* key_keep = nullptr;  // [bh, lk], nonzero = visible; nullptr: all
  void* out = nullptr;                // [bh, lq, d]
  float* lse = nullptr;               // [bh, lq]
  // backward only
  const void* grad_out = nullptr;  // [bh, lq, d]
  void* grad_q = nullptr;
  void* grad_k = nullptr;
  void* grad_v = nullptr;
  float* delta = nullptr;  // workspace [bh, lq]
  int bh = 0, lq = 0, lk = 0, d = 0;
  bool causal = false;
  float scale = 1.0f;
};

// ---------------------------------------------------------------------------
// Shared memory: row-major tiles, each padded by 16 bytes per row (fewer bank
// conflicts; keeps wmma's 16-byte leading-dimension rule) and starting on a
// 128-byte boundary. 16-row warp slices of a tile stay 32-byte aligned.
// ---------------------------------------------------------------------------
struct Tile {
  size_t offset = 0;
  int ld = 0;  // leading dimension, elements
};

struct Carver {
  size_t bytes = 0;
  LOOM_SIMT_HOST_DEVICE Tile take(int rows, int cols, size_t elem) {
    const Tile t{bytes, cols + static_cast<int>(16 / elem)};
    bytes = (bytes + static_cast<size_t>(rows) * t.ld * elem + 127) / 128 * 128;
    return t;
  }
};

template <class T>
LOOM_SIMT_DEVICE T* at(const Tile& t) {
  return reinterpret_cast<T*>(dynamic_shared<unsigned char>() + t.offset);
}

struct ForwardLayout {
  Tile q, k, v;  // T
  Tile s, o;     // f32: scores, output accumulator
  Tile p;        // T: probabilities
  size_t bytes;
};
template <class T>
LOOM_SIMT_HOST_DEVICE ForwardLayout forward_layout(int d) {
  Carver c;
  ForwardLayout l{};
  l.q = c.take(kBlockRows, d, sizeof(T));
  l.k = c.take(kTileRows, d, sizeof(T));
  l.v = c.take(kTileRows, d, sizeof(T));
  l.s = c.take(kBlockRows, kTileRows, sizeof(float));
  l.o = c.take(kBlockRows, d, sizeof(float));
  l.p = c.take(kBlockRows, kTileRows, sizeof(T));
  l.bytes = c.bytes;
  return l;
}

// Both backward passes use one layout. `mine` are the block's own rows (keys
// in the dK/dV pass, queries in the dQ pass), `theirs` the rows it walks.
struct BackwardLayout {
  Tile mine_a, mine_b;      // T: k, v (dK/dV pass) or q, dout (dQ pass)
  Tile theirs_a, theirs_b;  // T: q, dout (dK/dV pass) or k, v (dQ pass)
  Tile s, dp;               // f32: probabilities, dP
  Tile p;                   // T: probabilities, then dS
  Tile acc_a, acc_b;        // f32: dK, dV (dK/dV pass) or dQ (dQ pass)
  Tile lse, delta;          // f32: per query row
  size_t bytes;
};
template <class T>
LOOM_SIMT_HOST_DEVICE BackwardLayout backward_layout(int d) {
  Carver c;
  BackwardLayout l{};
  l.mine_a = c.take(kBlockRows, d, sizeof(T));
  l.mine_b = c.take(kBlockRows, d, sizeof(T));
  l.theirs_a = c.take(kTileRows, d, sizeof(T));
  l.theirs_b = c.take(kTileRows, d, sizeof(T));
  l.s = c.take(kBlockRows, kTileRows, sizeof(float));
  l.dp = c.take(kBlockRows, kTileRows, sizeof(float));
  l.p = c.take(kBlockRows, kTileRows, sizeof(T));
  l.acc_a = c.take(kBlockRows, d, sizeof(float));
  l.acc_b = c.take(kBlockRows, d, sizeof(float));
  l.lse = c.take(1, kBlockRows > kTileRows ? kBlockRows : kTileRows, sizeof(float));
  l.delta = c.take(1, kBlockRows > kTileRows ? kBlockRows : kTileRows, sizeof(float));
  l.bytes = c.bytes;
  return l;
}

// Head dims this file's kernels take: whole wmma tiles, within the shared
// budget (takes_head_dim, flash_backward_mma.cuh, for the kernels launched).
template <class T>
inline bool supports(int d, size_t max_shared_bytes) {
  return d > 0 && d % 16 == 0 && d <= kMaxHeadDim && forward_layout<T>(d).bytes <= max_shared_bytes &&
         backward_layout<T>(d).bytes <= max_shared_bytes;
}

// ---------------------------------------------------------------------------
// Device helpers
// ---------------------------------------------------------------------------

// A 16-byte copy into shared memory that is done when it returns.
struct CopyNow {
  LOOM_SIMT_DEVICE void operator()(void* dst, const void* src) const { copy16(dst, src); }
};

// rows [row0, row0 + rows) of a [total, d] matrix into a tile, zeros past
// `total`; 16-byte pieces, spread over the block's threads, each moved by
// `copy` (flash_forward_mma.cuh passes an asynchronous one).
template <class T, class Copy = CopyNow>
LOOM_SIMT_DEVICE void load_rows(T* dst, int ld, const T* src, int row0, int total, int d, int rows, Copy copy = {}) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  const int pieces = d / kPer;
  for (int i = static_cast<int>(thread_x()); i < rows * pieces; i += kThreads) {
    const int r = i / pieces, c = (i % pieces) * kPer;
    if (row0 + r < total)
      copy(dst + r * ld + c, src + (static_cast<size_t>(row0) + r) * d + c);
    else
      zero16(dst + r * ld + c);
  }
}

template <class T>
LOOM_SIMT_DEVICE void store_rows(T* dst, const float* src, int ld, int row0, int total, int d, int rows) {
  for (int i = static_cast<int>(thread_x()); i < rows * d; i += kThreads) {
    const int r = i / d, c = i % d;
    if (row0 + r < total) dst[(static_cast<size_t>(row0) + r) * d + c] = from_float<T>(src[r * ld + c]);
  }
}

LOOM_SIMT_DEVICE void zero_rows(float* dst, int ld, int rows, int cols) {
  for (int i = static_cast<int>(thread_x()); i < rows * cols; i += kThreads) dst[(i / cols) * ld + i % cols] = 0.0f;
}

LOOM_SIMT_DEVICE bool visible(const Args& a, int bh, int qi, int kj) {
  if (qi >= a.lq || kj >= a.lk) return false;
  if (a.causal && kj > qi + (a.lk - a.lq)) return false;
  return a.key_keep == nullptr || a.key_keep[static_cast<size_t>(bh) * a.lk + kj] != 0;
}

// One warp: c[16 x n] (+)= a[16 x k] · B, B [k x n] row-major, or stored as
// its transpose [n x k] when `b_transposed`. a, b: T in shared memory; c: f32.
// Callers sync_warp() before reading c from another lane.
template <class T>
struct WarpProduct;

template <>
struct WarpProduct<float> {
  static LOOM_SIMT_DEVICE void run(float* c, int ldc, const float* a, int lda, const float* b, int ldb,
                                   bool b_transposed, int n, int k, bool accumulate) {
    const int lane = static_cast<int>(thread_x() % 32);
    for (int i = lane; i < kWarpRows * n; i += 32) {
      const int r = i / n, col = i % n;
      float acc = accumulate ? c[r * ldc + col] : 0.0f;
      const float* ar = a + r * lda;
      if (b_transposed) {
        const float* bc = b + col * ldb;
        for (int j = 0; j < k; ++j) acc += ar[j] * bc[j];
      } else {
        for (int j = 0; j < k; ++j) acc += ar[j] * b[j * ldb + col];
      }
      c[r * ldc + col] = acc;
    }
  }
};

template <>
struct WarpProduct<bf16> {
  static LOOM_SIMT_DEVICE void run(float* c, int ldc, const bf16* a, int lda, const bf16* b, int ldb,
                                   bool b_transposed, int n, int k, bool accumulate) {
    using namespace loom::simt::wmma;
    for (int j = 0; j < n; j += 16) {
      fragment<accumulator, 16, 16, 16, float> acc;
      if (accumulate)
        load_matrix_sync(acc, c + j, ldc, mem_row_major);
      else
        fill_fragment(acc, 0.0f);
      fragment<matrix_a, 16, 16, 16, bf16, row_major> fa;
      for (int kk = 0; kk < k; kk += 16) {
        load_matrix_sync(fa, a + kk, lda);
        if (b_transposed) {
          fragment<matrix_b, 16, 16, 16, bf16, col_major> fb;
          load_matrix_sync(fb, b + j * ldb + kk, ldb);
          mma_sync(acc, fa, fb, acc);
        } else {
          fragment<matrix_b, 16, 16, 16, bf16, row_major> fb;
          load_matrix_sync(fb, b + kk * ldb + j, ldb);
          mma_sync(acc, fa, fb, acc);
        }
      }
      store_matrix_sync(c + j, acc, ldc, mem_row_major);
    }
  }
};

template <class T>
LOOM_SIMT_DEVICE void warp_product(float* c, int ldc, const T* a, int lda, const T* b, int ldb, bool b_transposed,
                                   int n, int k, bool accumulate) {
  WarpProduct<T>::run(c, ldc, a, lda, b, ldb, b_transposed, n, k, accumulate);
}

// The last key any query in [q0, q0 + rows) may see, plus one.
LOOM_SIMT_DEVICE int key_end(const Args& a, int q0, int rows) {
  if (!a.causal) return a.lk;
  const int last_query = (q0 + rows < a.lq ? q0 + rows : a.lq) - 1;
  const int end = last_query + (a.lk - a.lq) + 1;
  return end < a.lk ? end : a.lk;
}

// ---------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------

// grid (ceil(lq / 64), bh), kThreads threads
template <class T>
LOOM_SIMT_GLOBAL void forward_kernel(Args a) {
  const ForwardLayout L = forward_layout<T>(a.d);
  T* sq = at<T>(L.q);
  T* sk = at<T>(L.k);
  T* sv = at<T>(L.v);
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int bh = static_cast<int>(block_y()), q0 = static_cast<int>(block_x()) * kBlockRows, d = a.d;
  const T* q = static_cast<const T*>(a.q) + static_cast<size_t>(bh) * a.lq * d;
  const T* k = static_cast<const T*>(a.k) + static_cast<size_t>(bh) * a.lk * d;
  const T* v = static_cast<const T*>(a.v) + static_cast<size_t>(bh) * a.lk * d;

  load_rows(sq, L.q.ld, q, q0, a.lq, d, kBlockRows);
  zero_rows(at<float>(L.o), L.o.ld, kBlockRows, d);

  // Two lanes per row: lane 2r and 2r + 1 own row r of the warp's 16, taking
  // alternate columns.
  const int row = warp * kWarpRows + lane / 2, half = lane % 2;
  const int qi = q0 + row;
  float* srow = at<float>(L.s) + row * L.s.ld;
  T* prow = at<T>(L.p) + row * L.p.ld;
  float* orow = at<float>(L.o) + row * L.o.ld;
  float m = -INFINITY, l = 0.0f;

  const int end = key_end(a, q0, kBlockRows);
  for (int k0 = 0; k0 < end; k0 += kTileRows) {
    sync_block();  // everyone is done with the previous k, v tiles
    load_rows(sk, L.k.ld, k, k0, a.lk, d, kTileRows);
    load_rows(sv, L.v.ld, v, k0, a.lk, d, kTileRows);
    sync_block();

    const int w0 = warp * kWarpRows;
    warp_product<T>(at<float>(L.s) + w0 * L.s.ld, L.s.ld, sq + w0 * L.q.ld, L.q.ld, sk, L.k.ld, true, kTileRows, d,
                    false);
    sync_warp();

    float tile_max = -INFINITY;
    for (int c = half; c < kTileRows; c += 2) {
      const float x = visible(a, bh, qi, k0 + c) ? srow[c] * a.scale : -INFINITY;
      srow[c] = x;
      tile_max = fmaxf(tile_max, x);
    }
    tile_max = fmaxf(tile_max, shfl_xor(tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // no key yet: keep every term 0, not NaN
    const float alpha = expf(m - m_use);
    float sum = 0.0f;
    for (int c = half; c < kTileRows; c += 2) {
      const float p = expf(srow[c] - m_use);
      prow[c] = from_float<T>(p);
      sum += p;
    }
    sum += shfl_xor(sum, 1);
    l = l * alpha + sum;
    m = m_new;
    for (int c = half; c < d; c += 2) orow[c] *= alpha;
    sync_warp();

    warp_product<T>(at<float>(L.o) + w0 * L.o.ld, L.o.ld, at<T>(L.p) + w0 * L.p.ld, L.p.ld, sv, L.v.ld, false, d,
                    kTileRows, true);
    sync_warp();
  }
  sync_block();  // with no key tile at all, other warps zeroed this row

  if (qi < a.lq) {
    const float inv = 1.0f / l;  // l == 0 (no visible key): NaN, as the composed softmax gives
    T* out = static_cast<T*>(a.out) + (static_cast<size_t>(bh) * a.lq + qi) * d;
    for (int c = half; c < d; c += 2) out[c] = from_float<T>(orow[c] * inv);
    if (half == 0) a.lse[static_cast<size_t>(bh) * a.lq + qi] = (m == -INFINITY ? 0.0f : m) + logf(l);
  }
}

// delta[i] = Σ_c dout[i, c] · out[i, c]; one warp per row, grid ceil(bh·lq / kWarps).
template <class T>
LOOM_SIMT_GLOBAL void delta_kernel(Args a) {
  const size_t rows = static_cast<size_t>(a.bh) * a.lq;
  const size_t row = static_cast<size_t>(block_x()) * kWarps + thread_x() / 32;
  if (row >= rows) return;  // whole warps leave together
  const T* o = static_cast<const T*>(a.out) + row * a.d;
  const T* g = static_cast<const T*>(a.grad_out) + row * a.d;
  float sum = 0.0f;
  for (int c = static_cast<int>(thread_x() % 32); c < a.d; c += 32) sum += to_float(o[c]) * to_float(g[c]);
  for (int m = 16; m > 0; m /= 2) sum += shfl_xor(sum, m);
  if (thread_x() % 32 == 0) a.delta[row] = sum;
}

// Copies the per-query lse and delta of rows [q0, q0 + n) into shared memory.
LOOM_SIMT_DEVICE void load_row_stats(float* lse, float* delta, const Args& a, int bh, int q0, int n) {
  for (int i = static_cast<int>(thread_x()); i < n; i += kThreads) {
    const bool in = q0 + i < a.lq;
    const size_t at_row = static_cast<size_t>(bh) * a.lq + q0 + i;
    lse[i] = in ? a.lse[at_row] : 0.0f;
    delta[i] = in ? a.delta[at_row] : 0.0f;
  }
}

// What both backward passes share: the block's place, its shared tiles, and
// this warp's 16-row slices of the per-warp tiles. `mine` are the block's own
// 64 rows (keys in the dK/dV pass, queries in the dQ pass) starting at row0.
template <class T>
struct BackwardBlock {
  BackwardLayout L;
  int lane, w0, bh, row0;
  size_t q_base, k_base;  // element offsets of this head in q/out and in k/v
  T *mine_a, *mine_b, *theirs_a, *theirs_b;
  float *lse, *delta;  // per row of the query tile
  float *s, *dp;       // this warp's slices
  T* p;

  LOOM_SIMT_DEVICE explicit BackwardBlock(const Args& a)
      : L(backward_layout<T>(a.d)),
        lane(static_cast<int>(thread_x() % 32)),
        w0(static_cast<int>(thread_x() / 32) * kWarpRows),
        bh(static_cast<int>(block_y())),
        row0(static_cast<int>(block_x()) * kBlockRows),
        q_base(static_cast<size_t>(bh) * a.lq * a.d),
        k_base(static_cast<size_t>(bh) * a.lk * a.d),
        mine_a(at<T>(L.mine_a)),
        mine_b(at<T>(L.mine_b)),
        theirs_a(at<T>(L.theirs_a)),
        theirs_b(at<T>(L.theirs_b)),
        lse(at<float>(L.lse)),
        delta(at<float>(L.delta)),
        s(at<float>(L.s) + w0 * L.s.ld),
        dp(at<float>(L.dp) + w0 * L.dp.ld),
        p(at<T>(L.p) + w0 * L.p.ld) {}

  // This warp's 16-row slice of a block-wide f32 accumulator tile.
  LOOM_SIMT_DEVICE float* warp_acc(const Tile& t) const { return at<float>(t) + w0 * t.ld; }
};

// dK, dV: grid (ceil(lk / 64), bh); the block owns 64 keys and walks the queries.
template <class T>
LOOM_SIMT_GLOBAL void backward_kv_kernel(Args a) {
  const BackwardBlock<T> b(a);
  const BackwardLayout& L = b.L;
  const int d = a.d, k0 = b.row0;
  T *sk = b.mine_a, *sv = b.mine_b, *sq = b.theirs_a, *sdo = b.theirs_b;

  load_rows(sk, L.mine_a.ld, static_cast<const T*>(a.k) + b.k_base, k0, a.lk, d, kBlockRows);
  load_rows(sv, L.mine_b.ld, static_cast<const T*>(a.v) + b.k_base, k0, a.lk, d, kBlockRows);
  zero_rows(at<float>(L.acc_a), L.acc_a.ld, kBlockRows, d);
  zero_rows(at<float>(L.acc_b), L.acc_b.ld, kBlockRows, d);

  // The first query that sees key k0 (causal), rounded down to a tile.
  int q_begin = 0;
  if (a.causal) {
    const int first = k0 - (a.lk - a.lq);
    q_begin = first > 0 ? first / kTileRows * kTileRows : 0;
  }
  for (int q0 = q_begin; q0 < a.lq; q0 += kTileRows) {
    sync_block();
    load_rows(sq, L.theirs_a.ld, static_cast<const T*>(a.q) + b.q_base, q0, a.lq, d, kTileRows);
    load_rows(sdo, L.theirs_b.ld, static_cast<const T*>(a.grad_out) + b.q_base, q0, a.lq, d, kTileRows);
    load_row_stats(b.lse, b.delta, a, b.bh, q0, kTileRows);
    sync_block();

    // Sᵀ = k qᵀ, then Pᵀ (f32 into s, T into p)
    warp_product<T>(b.s, L.s.ld, sk + b.w0 * L.mine_a.ld, L.mine_a.ld, sq, L.theirs_a.ld, true, kTileRows, d, false);
    sync_warp();
    for (int i = b.lane; i < kWarpRows * kTileRows; i += 32) {
      const int r = i / kTileRows, c = i % kTileRows;
      const bool seen = visible(a, b.bh, q0 + c, k0 + b.w0 + r);
      const float pv = seen ? expf(b.s[r * L.s.ld + c] * a.scale - b.lse[c]) : 0.0f;
      b.s[r * L.s.ld + c] = pv;
      b.p[r * L.p.ld + c] = from_float<T>(pv);
    }
    sync_warp();
    // dV += Pᵀ dout;  dPᵀ = v doutᵀ
    warp_product<T>(b.warp_acc(L.acc_b), L.acc_b.ld, b.p, L.p.ld, sdo, L.theirs_b.ld, false, d, kTileRows, true);
    warp_product<T>(b.dp, L.dp.ld, sv + b.w0 * L.mine_b.ld, L.mine_b.ld, sdo, L.theirs_b.ld, true, kTileRows, d,
                    false);
    sync_warp();
    // dSᵀ = Pᵀ ∘ (dPᵀ − delta) · scale, over p (the dV product is done with
    // it); 0 where the key is not seen, even when delta is NaN (a query that
    // sees no key at all), as the composed masked softmax gives.
    for (int i = b.lane; i < kWarpRows * kTileRows; i += 32) {
      const int r = i / kTileRows, c = i % kTileRows;
      const bool seen = visible(a, b.bh, q0 + c, k0 + b.w0 + r);
      const float ds = b.s[r * L.s.ld + c] * (b.dp[r * L.dp.ld + c] - b.delta[c]) * a.scale;
      b.p[r * L.p.ld + c] = from_float<T>(seen ? ds : 0.0f);
    }
    sync_warp();
    // dK += dSᵀ q
    warp_product<T>(b.warp_acc(L.acc_a), L.acc_a.ld, b.p, L.p.ld, sq, L.theirs_a.ld, false, d, kTileRows, true);
    sync_warp();
  }
  sync_block();
  store_rows(static_cast<T*>(a.grad_k) + b.k_base, at<float>(L.acc_a), L.acc_a.ld, k0, a.lk, d, kBlockRows);
  store_rows(static_cast<T*>(a.grad_v) + b.k_base, at<float>(L.acc_b), L.acc_b.ld, k0, a.lk, d, kBlockRows);
}

// dQ: grid (ceil(lq / 64), bh); the block owns 64 queries and walks the keys.
template <class T>
LOOM_SIMT_GLOBAL void backward_q_kernel(Args a) {
  const BackwardBlock<T> b(a);
  const BackwardLayout& L = b.L;
  const int d = a.d, q0 = b.row0;
  T *sq = b.mine_a, *sdo = b.mine_b, *sk = b.theirs_a, *sv = b.theirs_b;

  load_rows(sq, L.mine_a.ld, static_cast<const T*>(a.q) + b.q_base, q0, a.lq, d, kBlockRows);
  load_rows(sdo, L.mine_b.ld, static_cast<const T*>(a.grad_out) + b.q_base, q0, a.lq, d, kBlockRows);
  load_row_stats(b.lse, b.delta, a, b.bh, q0, kBlockRows);
  zero_rows(at<float>(L.acc_a), L.acc_a.ld, kBlockRows, d);

  const int end = key_end(a, q0, kBlockRows);
  for (int k0 = 0; k0 < end; k0 += kTileRows) {
    sync_block();
    load_rows(sk, L.theirs_a.ld, static_cast<const T*>(a.k) + b.k_base, k0, a.lk, d, kTileRows);
    load_rows(sv, L.theirs_b.ld, static_cast<const T*>(a.v) + b.k_base, k0, a.lk, d, kTileRows);
    sync_block();

    // S = q kᵀ;  dP = dout vᵀ
    warp_product<T>(b.s, L.s.ld, sq + b.w0 * L.mine_a.ld, L.mine_a.ld, sk, L.theirs_a.ld, true, kTileRows, d, false);
    warp_product<T>(b.dp, L.dp.ld, sdo + b.w0 * L.mine_b.ld, L.mine_b.ld, sv, L.theirs_b.ld, true, kTileRows, d,
                    false);
    sync_warp();
    // dS = P ∘ (dP − delta) · scale
    for (int i = b.lane; i < kWarpRows * kTileRows; i += 32) {
      const int r = i / kTileRows, c = i % kTileRows, row = b.w0 + r;
      const bool seen = visible(a, b.bh, q0 + row, k0 + c);
      const float pv = seen ? expf(b.s[r * L.s.ld + c] * a.scale - b.lse[row]) : 0.0f;
      // 0 where not seen, even when delta is NaN (a query that sees no key)
      b.p[r * L.p.ld + c] = from_float<T>(seen ? pv * (b.dp[r * L.dp.ld + c] - b.delta[row]) * a.scale : 0.0f);
    }
    sync_warp();
    // dQ += dS k
    warp_product<T>(b.warp_acc(L.acc_a), L.acc_a.ld, b.p, L.p.ld, sk, L.theirs_a.ld, false, d, kTileRows, true);
    sync_warp();
  }
  sync_block();
  store_rows(static_cast<T*>(a.grad_q) + b.q_base, at<float>(L.acc_a), L.acc_a.ld, q0, a.lq, d, kBlockRows);
}

// ---------------------------------------------------------------------------
// Launches (same code on the device and on the emulator). Each returns the
// launch status (cudaError_t on the device, 0 on the emulator).
// ---------------------------------------------------------------------------
inline unsigned blocks_for(int rows) { return static_cast<unsigned>((rows + kBlockRows - 1) / kBlockRows); }

// The forward of this file's kernel; launch_forward (flash_forward_mma.cuh)
// picks between it and the register-resident bf16 kernel.
template <class T>
auto launch_forward_tiles(const Args& a, Stream stream) {
  return launch(Dim3(blocks_for(a.lq), static_cast<unsigned>(a.bh)), Dim3(kThreads), forward_layout<T>(a.d).bytes,
                stream, forward_kernel<T>, a);
}

// delta, which both backward passes read (every backward launches it first).
template <class T>
auto launch_delta(const Args& a, Stream stream) {
  const size_t rows = static_cast<size_t>(a.bh) * a.lq;
  return launch(Dim3(static_cast<unsigned>((rows + kWarps - 1) / kWarps)), Dim3(kThreads), 0, stream,
                delta_kernel<T>, a);
}

// The two backward passes of this file's kernels, after launch_delta;
// launch_backward (flash_backward_mma.cuh) picks between them and the
// register-resident bf16 ones.
template <class T>
auto launch_backward_tiles(const Args& a, Stream stream) {
  const size_t bytes = backward_layout<T>(a.d).bytes;
  auto status = launch(Dim3(blocks_for(a.lk), static_cast<unsigned>(a.bh)), Dim3(kThreads), bytes, stream,
                       backward_kv_kernel<T>, a);
  if (status != decltype(status){}) return status;
  return launch(Dim3(blocks_for(a.lq), static_cast<unsigned>(a.bh)), Dim3(kThreads), bytes, stream,
                backward_q_kernel<T>, a);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::flash
