// Flash attention backward for bf16 with each warp's tiles in registers: the
// FlashAttention-2 backward on mma.sync m16n8k16 tiles, in the two passes of
// flash_attention.cuh (no atomics: every gradient deterministic).
//
// Floor: as flash_attention.cuh's backward, 14·BH·Lq·Lk·D FLOPs (half when
// causal): compute-bound.
//
// A block of four warps owns 64 rows of one head (16 per warp) and walks the
// other side 64 rows at a time, double-buffered in shared memory (cp.async
// fetches tile t+1 while tile t is multiplied; the dK/dV pass's per-query
// lse and delta for t+1 are loaded into registers before t's products and
// stored after them). Per tile a warp computes, all
// in registers (m16n8 accumulator tiles; a pair of them is repacked in place
// as the bf16 A fragment of the next product, as in flash_forward_mma.cuh):
//   dK/dV pass (the block owns 64 keys, walks the queries):
//     Sᵀ = k qᵀ, Pᵀ = exp(scale·Sᵀ − lse)   16 keys x 64 queries
//     dV += Pᵀ dout
//     dPᵀ = v doutᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − delta)
//     dK += dSᵀ q                           (scaled once at the end)
//   dQ pass (the block owns 64 queries, walks the keys):
//     S = q kᵀ, P = exp(scale·S − lse), dP = dout vᵀ, dS = P ∘ (dP − delta)
//     dQ += dS k                            (scaled once at the end)
// The exponentials run in the log2 domain (scale·log2 e folded in) on the
// special-function unit (fast_exp2). The
// block's own rows' fragments (k and v, or q and dout) stay in registers up
// to head dim 64; at 128 they are read from shared memory at each use, which
// keeps the accumulators (dK and dV: 128 floats a thread) out of local memory.
//
// Head dims 16, 32, 64 and 128; flash_attention.cuh's kernels take f32 and
// the other head dims. Masks, and the zero gradients of a query that sees no
// key, are as there.
#pragma once

#include "flash_attention.cuh"
#include "flash_forward_mma.cuh"
#include "simt_mma.cuh"

namespace loom::flash {
inline namespace LOOM_SIMT_ABI {

namespace mma_backward {

using mma_forward::fetch_rows;
using mma_forward::kLog2e;
using mma_forward::mma_tile_pair;

inline constexpr int kRows = kWarps * 16;  // the block's own rows
inline constexpr int kTile = 64;           // rows of the other side per step
inline constexpr int kTileNs = kTile / 8;  // accumulator tiles across a step's rows

LOOM_SIMT_HOST_DEVICE constexpr bool fragments_in_registers(int d) { return d <= 64; }

struct Layout {
  Tile mine_a, mine_b;          // k, v (dK/dV pass) or q, dout (dQ pass)
  Tile theirs_a[2], theirs_b[2];  // q, dout (dK/dV pass) or k, v (dQ pass), double-buffered
  Tile lse[2], delta[2];        // f32, per query of a step (dK/dV pass)
  size_t bytes;
};
template <int D>
LOOM_SIMT_HOST_DEVICE Layout layout() {
  Carver c;
  Layout l{};
  l.mine_a = c.take(kRows, D, sizeof(bf16));
  l.mine_b = c.take(kRows, D, sizeof(bf16));
  for (int i = 0; i < 2; ++i) {
    l.theirs_a[i] = c.take(kTile, D, sizeof(bf16));
    l.theirs_b[i] = c.take(kTile, D, sizeof(bf16));
    l.lse[i] = c.take(1, kTile, sizeof(float));
    l.delta[i] = c.take(1, kTile, sizeof(float));
  }
  l.bytes = c.bytes;
  return l;
}

// The A fragments of a warp's 16 rows (starting at `row0` of a tile), one per
// 16-column step: rows 0-7 | 8-15 by columns 0-7, then by columns 8-15.
template <int D>
struct RowFragments {
  static constexpr int kSteps = D / 16;
  uint32_t f[kSteps][1][4];
  LOOM_SIMT_DEVICE void load(const bf16* tile, int ld, int row0, int lane) {
    const bf16* rows = tile + (row0 + (lane / 8) % 2 * 8 + lane % 8) * ld + lane / 16 * 8;
    LOOM_SIMT_UNROLL
    for (int st = 0; st < kSteps; ++st) ldmatrix_x4(f[st][0], rows + st * 16);
  }
};

// c[16 x 64] = A · Yᵀ over D: A the warp's 16 rows of `mine` (fragments in
// registers, or read from shared memory), Y the 64 rows of a step's tile.
template <int D>
LOOM_SIMT_DEVICE void product_with_rows(float (&c)[1][kTileNs][4], const RowFragments<D>& held, const bf16* mine,
                                        int row0, const bf16* y, int ld, int lane) {
  LOOM_SIMT_UNROLL
  for (int nt = 0; nt < kTileNs; ++nt)
    LOOM_SIMT_UNROLL
    for (int e = 0; e < 4; ++e) c[0][nt][e] = 0.0f;
  const bf16* a_rows = mine + (row0 + (lane / 8) % 2 * 8 + lane % 8) * ld + lane / 16 * 8;
  const bf16* b_rows = y + (lane / 16 * 8 + lane % 8) * ld + (lane / 8) % 2 * 8;
  LOOM_SIMT_UNROLL
  for (int st = 0; st < D / 16; ++st) {
    uint32_t a[1][4];
    if constexpr (fragments_in_registers(D)) {
      LOOM_SIMT_UNROLL
      for (int r = 0; r < 4; ++r) a[0][r] = held.f[st][0][r];
    } else {
      ldmatrix_x4(a[0], a_rows + st * 16);
    }
    LOOM_SIMT_UNROLL
    for (int pair = 0; pair < kTileNs / 2; ++pair) {
      uint32_t b[4];
      ldmatrix_x4(b, b_rows + pair * 16 * ld + st * 16);
      mma_tile_pair(c, a, b, pair);
    }
  }
}

// acc[16 x D] += p[16 x 64] · Y, Y a step's tile [64 rows x D]; p's
// accumulator tiles are rounded to bf16 A fragments.
template <int D>
LOOM_SIMT_DEVICE void accumulate_times_tile(float (&acc)[1][D / 8][4], const float (&p)[1][kTileNs][4],
                                            const bf16* y, int ld, int lane) {
  const bf16* rows = y + ((lane / 8) % 2 * 8 + lane % 8) * ld + lane / 16 * 8;
  LOOM_SIMT_UNROLL
  for (int st = 0; st < kTile / 16; ++st) {
    uint32_t pf[1][4];
    pf[0][0] = pack_bf16x2(p[0][2 * st][0], p[0][2 * st][1]);
    pf[0][1] = pack_bf16x2(p[0][2 * st][2], p[0][2 * st][3]);
    pf[0][2] = pack_bf16x2(p[0][2 * st + 1][0], p[0][2 * st + 1][1]);
    pf[0][3] = pack_bf16x2(p[0][2 * st + 1][2], p[0][2 * st + 1][3]);
    LOOM_SIMT_UNROLL
    for (int pair = 0; pair < D / 16; ++pair) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, rows + st * 16 * ld + pair * 16);
      mma_tile_pair(acc, pf, b, pair);
    }
  }
}

// A warp's 16 x D accumulator, times `scale`, into rows [row0, row0 + 16) of
// a [total, D] bf16 matrix (rows past `total` skipped).
template <int D>
LOOM_SIMT_DEVICE void store_rows_scaled(bf16* dst, const float (&acc)[1][D / 8][4], float scale, int row0, int total,
                                        int lane) {
  const int group = lane / 4, quad = lane % 4;
  LOOM_SIMT_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + group + 8 * r;
    if (row >= total) continue;
    bf16* out = dst + static_cast<size_t>(row) * D + quad * 2;
    LOOM_SIMT_UNROLL
    for (int dt = 0; dt < D / 8; ++dt)
      store_u32(out + dt * 8, pack_bf16x2(acc[0][dt][2 * r] * scale, acc[0][dt][2 * r + 1] * scale));
  }
}

// A step's per-query statistics, one value per thread: threads [0, 64) the
// lse (log2 domain) of query q0 + i, threads [64, 128) its delta; 0 past lq.
// Loaded into a register before a step's products and stored into shared
// memory after them, so that the load's latency hides behind the products.
static_assert(kThreads == 2 * kTile, "a thread per lse and per delta of a step");
LOOM_SIMT_DEVICE float load_query_stat(const Args& a, int bh, int q0) {
  const int i = static_cast<int>(thread_x()) % kTile;
  if (q0 + i >= a.lq) return 0.0f;
  const size_t row = static_cast<size_t>(bh) * a.lq + q0 + i;
  return thread_x() < kTile ? a.lse[row] * kLog2e : a.delta[row];
}
LOOM_SIMT_DEVICE void store_query_stat(float* lse, float* delta, float value) {
  const int i = static_cast<int>(thread_x());
  if (i < kTile)
    lse[i] = value;
  else
    delta[i - kTile] = value;
}

// body(std::false_type{}) for a step no mask touches (`whole`), else
// body(std::true_type{}): an element loop built twice, without the mask's
// tests and with them.
template <class Body>
LOOM_SIMT_DEVICE void by_mask(bool whole, Body&& body) {
  if (whole)
    body(std::false_type{});
  else
    body(std::true_type{});
}

// dK, dV: grid (ceil(lk / 64), bh), kThreads threads.
template <int D>
LOOM_SIMT_GLOBAL void kv_kernel(Args a) {
  constexpr int kDimTiles = D / 8;
  const Layout L = layout<D>();
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int group = lane / 4, quad = lane % 4;
  const int bh = static_cast<int>(block_y()), k0 = static_cast<int>(block_x()) * kRows, w0 = warp * 16;
  const size_t q_base = static_cast<size_t>(bh) * a.lq * D, k_base = static_cast<size_t>(bh) * a.lk * D;
  const bf16* q = static_cast<const bf16*>(a.q) + q_base;
  const bf16* dout = static_cast<const bf16*>(a.grad_out) + q_base;
  const int ld = L.mine_a.ld;  // every tile's

  // The first query that sees key k0 (causal), rounded down to a step.
  int q_begin = 0;
  if (a.causal) {
    const int first = k0 - (a.lk - a.lq);
    q_begin = first > 0 ? first / kTile * kTile : 0;
  }
  const int steps = q_begin < a.lq ? (a.lq - q_begin + kTile - 1) / kTile : 0;

  const auto q_buffer = [&](int i) { return i == 0 ? at<bf16>(L.theirs_a[0]) : at<bf16>(L.theirs_a[1]); };
  const auto dout_buffer = [&](int i) { return i == 0 ? at<bf16>(L.theirs_b[0]) : at<bf16>(L.theirs_b[1]); };
  const auto lse_buffer = [&](int i) { return i == 0 ? at<float>(L.lse[0]) : at<float>(L.lse[1]); };
  const auto delta_buffer = [&](int i) { return i == 0 ? at<float>(L.delta[0]) : at<float>(L.delta[1]); };

  fetch_rows<D, kRows>(at<bf16>(L.mine_a), ld, static_cast<const bf16*>(a.k) + k_base, k0, a.lk);
  fetch_rows<D, kRows>(at<bf16>(L.mine_b), ld, static_cast<const bf16*>(a.v) + k_base, k0, a.lk);
  if (steps > 0) {
    fetch_rows<D, kTile>(q_buffer(0), ld, q, q_begin, a.lq);
    fetch_rows<D, kTile>(dout_buffer(0), ld, dout, q_begin, a.lq);
    store_query_stat(lse_buffer(0), delta_buffer(0), load_query_stat(a, bh, q_begin));
  }
  cp_async_commit();
  cp_async_wait_all();
  sync_block();

  RowFragments<D> kf{}, vf{};
  if constexpr (fragments_in_registers(D)) {
    kf.load(at<bf16>(L.mine_a), ld, w0, lane);
    vf.load(at<bf16>(L.mine_b), ld, w0, lane);
  }
  float dk[1][kDimTiles][4] = {}, dv[1][kDimTiles][4] = {};
  const float scale_log2 = a.scale * kLog2e;
  const int key[2] = {k0 + w0 + group, k0 + w0 + group + 8};

  for (int t = 0; t < steps; ++t) {
    const int buf = t % 2, q0 = q_begin + t * kTile;
    const bool next = t + 1 < steps;
    float next_stat = 0.0f;
    if (next) {  // the other buffers were released by the last step's sync_block
      fetch_rows<D, kTile>(q_buffer(1 - buf), ld, q, q0 + kTile, a.lq);
      fetch_rows<D, kTile>(dout_buffer(1 - buf), ld, dout, q0 + kTile, a.lq);
      next_stat = load_query_stat(a, bh, q0 + kTile);
    }
    cp_async_commit();
    const bf16* sq = q_buffer(buf);
    const bf16* sdo = dout_buffer(buf);
    const float* lse = lse_buffer(buf);
    const float* delta = delta_buffer(buf);

    // Pᵀ: rows the warp's keys, columns the step's queries.
    float p[1][kTileNs][4];
    product_with_rows<D>(p, kf, at<bf16>(L.mine_a), w0, sq, ld, lane);
    // A step whose every query sees every key of the block skips the mask's
    // tests (by_mask).
    const bool whole = k0 + kRows <= a.lk && q0 + kTile <= a.lq && a.key_keep == nullptr &&
                       (!a.causal || k0 + kRows - 1 <= q0 + (a.lk - a.lq));
    const auto seen = [&](int c, int e) { return visible(a, bh, q0 + c, key[e / 2]); };
    const auto probabilities = [&](auto masked) {
      LOOM_SIMT_UNROLL
      for (int nt = 0; nt < kTileNs; ++nt)
        LOOM_SIMT_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + quad * 2 + e % 2;
          const float x = fast_exp2(fmaf(p[0][nt][e], scale_log2, -lse[c]));
          p[0][nt][e] = !decltype(masked)::value || seen(c, e) ? x : 0.0f;
        }
    };
    by_mask(whole, probabilities);
    accumulate_times_tile<D>(dv, p, sdo, ld, lane);

    // dSᵀ = Pᵀ ∘ (dPᵀ − delta), into p; 0 where the key is not seen, even
    // when delta is NaN (a query that sees no key at all).
    float dp[1][kTileNs][4];
    product_with_rows<D>(dp, vf, at<bf16>(L.mine_b), w0, sdo, ld, lane);
    const auto score_gradients = [&](auto masked) {
      LOOM_SIMT_UNROLL
      for (int nt = 0; nt < kTileNs; ++nt)
        LOOM_SIMT_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + quad * 2 + e % 2;
          const float ds = p[0][nt][e] * (dp[0][nt][e] - delta[c]);
          p[0][nt][e] = !decltype(masked)::value || seen(c, e) ? ds : 0.0f;
        }
    };
    by_mask(whole, score_gradients);
    accumulate_times_tile<D>(dk, p, sq, ld, lane);

    if (next) store_query_stat(lse_buffer(1 - buf), delta_buffer(1 - buf), next_stat);
    cp_async_wait_all();
    sync_block();  // the next step is in; everyone is done with this one
  }
  store_rows_scaled<D>(static_cast<bf16*>(a.grad_k) + k_base, dk, a.scale, k0 + w0, a.lk, lane);
  store_rows_scaled<D>(static_cast<bf16*>(a.grad_v) + k_base, dv, 1.0f, k0 + w0, a.lk, lane);
}

// dQ: grid (ceil(lq / 64), bh), kThreads threads.
template <int D>
LOOM_SIMT_GLOBAL void q_kernel(Args a) {
  constexpr int kDimTiles = D / 8;
  const Layout L = layout<D>();
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int group = lane / 4, quad = lane % 4;
  // The last query blocks first, the longest under a causal mask (the dK/dV
  // pass's first key blocks are its longest: its natural order).
  const int bh = static_cast<int>(block_y()), w0 = warp * 16;
  const int q0 = static_cast<int>(grid_dim_x() - 1 - block_x()) * kRows;
  const size_t q_base = static_cast<size_t>(bh) * a.lq * D, k_base = static_cast<size_t>(bh) * a.lk * D;
  const bf16* k = static_cast<const bf16*>(a.k) + k_base;
  const bf16* v = static_cast<const bf16*>(a.v) + k_base;
  const int ld = L.mine_a.ld;
  const int steps = (key_end(a, q0, kRows) + kTile - 1) / kTile;

  const auto k_buffer = [&](int i) { return i == 0 ? at<bf16>(L.theirs_a[0]) : at<bf16>(L.theirs_a[1]); };
  const auto v_buffer = [&](int i) { return i == 0 ? at<bf16>(L.theirs_b[0]) : at<bf16>(L.theirs_b[1]); };

  fetch_rows<D, kRows>(at<bf16>(L.mine_a), ld, static_cast<const bf16*>(a.q) + q_base, q0, a.lq);
  fetch_rows<D, kRows>(at<bf16>(L.mine_b), ld, static_cast<const bf16*>(a.grad_out) + q_base, q0, a.lq);
  if (steps > 0) {
    fetch_rows<D, kTile>(k_buffer(0), ld, k, 0, a.lk);
    fetch_rows<D, kTile>(v_buffer(0), ld, v, 0, a.lk);
  }
  cp_async_commit();
  cp_async_wait_all();
  sync_block();

  RowFragments<D> qf{}, of{};
  if constexpr (fragments_in_registers(D)) {
    qf.load(at<bf16>(L.mine_a), ld, w0, lane);
    of.load(at<bf16>(L.mine_b), ld, w0, lane);
  }
  // The lane's two query rows: lse (log2 domain) and delta.
  int query[2];
  float lse[2], delta[2];
  LOOM_SIMT_UNROLL
  for (int r = 0; r < 2; ++r) {
    query[r] = q0 + w0 + group + 8 * r;
    const bool in = query[r] < a.lq;
    const size_t row = static_cast<size_t>(bh) * a.lq + query[r];
    lse[r] = in ? a.lse[row] * kLog2e : 0.0f;
    delta[r] = in ? a.delta[row] : 0.0f;
  }
  float dq[1][kDimTiles][4] = {};
  const float scale_log2 = a.scale * kLog2e;

  for (int t = 0; t < steps; ++t) {
    const int buf = t % 2, k0 = t * kTile;
    if (t + 1 < steps) {
      fetch_rows<D, kTile>(k_buffer(1 - buf), ld, k, k0 + kTile, a.lk);
      fetch_rows<D, kTile>(v_buffer(1 - buf), ld, v, k0 + kTile, a.lk);
    }
    cp_async_commit();
    const bf16* sk = k_buffer(buf);
    const bf16* sv = v_buffer(buf);

    float p[1][kTileNs][4], dp[1][kTileNs][4];
    product_with_rows<D>(p, qf, at<bf16>(L.mine_a), w0, sk, ld, lane);
    product_with_rows<D>(dp, of, at<bf16>(L.mine_b), w0, sv, ld, lane);
    const bool whole = q0 + kRows <= a.lq && k0 + kTile <= a.lk && a.key_keep == nullptr &&
                       (!a.causal || k0 + kTile - 1 <= q0 + (a.lk - a.lq));
    // dS = P ∘ (dP − delta), into p; 0 where not seen (see the dK/dV pass).
    const auto score_gradients = [&](auto masked) {
      LOOM_SIMT_UNROLL
      for (int nt = 0; nt < kTileNs; ++nt)
        LOOM_SIMT_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int r = e / 2, c = k0 + nt * 8 + quad * 2 + e % 2;
          const float pv = fast_exp2(fmaf(p[0][nt][e], scale_log2, -lse[r]));
          const float ds = pv * (dp[0][nt][e] - delta[r]);
          p[0][nt][e] = !decltype(masked)::value || visible(a, bh, query[r], c) ? ds : 0.0f;
        }
    };
    by_mask(whole, score_gradients);
    accumulate_times_tile<D>(dq, p, sk, ld, lane);

    cp_async_wait_all();
    sync_block();
  }
  store_rows_scaled<D>(static_cast<bf16*>(a.grad_q) + q_base, dq, a.scale, q0 + w0, a.lq, lane);
}

template <int D>
auto launch(const Args& a, Stream stream) {
  const size_t bytes = layout<D>().bytes;
  auto status = simt::launch(Dim3(static_cast<unsigned>((a.lk + kRows - 1) / kRows), static_cast<unsigned>(a.bh)),
                             Dim3(kThreads), bytes, stream, kv_kernel<D>, a);
  if (status != decltype(status){}) return status;
  return simt::launch(Dim3(static_cast<unsigned>((a.lq + kRows - 1) / kRows), static_cast<unsigned>(a.bh)),
                      Dim3(kThreads), bytes, stream, q_kernel<D>, a);
}

}  // namespace mma_backward

// Whether the kernels launch_forward and launch_backward pick for T at head
// dim d fit in `max_shared_bytes` of shared memory per block (the
// register-resident ones need less than the shared-memory ones: head dim 128
// in bf16 fits an A100's 163 KB only through them).
template <class T>
bool takes_head_dim(int d, size_t max_shared_bytes) {
  const auto tiles = [&] { return supports<T>(d, max_shared_bytes); };
  if constexpr (std::is_same_v<T, bf16>)
    return by_register_head_dim(
        d,
        [&]<int D>() {
          return mma_forward::layout<mma_forward::Shape<D>>().bytes <= max_shared_bytes &&
                 mma_backward::layout<D>().bytes <= max_shared_bytes;
        },
        tiles);
  else
    return tiles();
}

// The backward: delta, then the register-resident passes for bf16 where they
// take the head dim, the shared-memory ones otherwise.
template <class T>
auto launch_backward(const Args& a, Stream stream) {
  auto status = launch_delta<T>(a, stream);
  if (status != decltype(status){}) return status;
  const auto tiles = [&] { return launch_backward_tiles<T>(a, stream); };
  if constexpr (std::is_same_v<T, bf16>)
    return by_register_head_dim(a.d, [&]<int D>() { return mma_backward::launch<D>(a, stream); }, tiles);
  else
    return tiles();
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::flash
