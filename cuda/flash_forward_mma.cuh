// Flash attention forward for bf16 with everything a warp computes held in
// registers: the FlashAttention-2 forward on mma.sync m16n8k16 tiles.
//
// Floor: as flash_attention.cuh's forward, 4·BH·Lq·Lk·D FLOPs (half when
// causal), (2·Lq + 2·Lk)·BH·D elements moved: compute-bound.
//
// A block of four warps owns 128 queries of one head (32 per warp: two
// 16-row tiles) and walks the keys 64 at a time (32 at head dim 128, where
// 64 would need more than 255 registers). Per key tile a warp:
//   S = q kᵀ        q's fragments sit in registers for the whole walk up to
//                   head dim 64 (from shared memory per tile at 128), k's
//                   come from shared memory by ldmatrix; S is 16 x 64 f32 in
//                   registers per row tile (8 accumulator tiles; 4 at 128);
//   online softmax  in the log2 domain: the max of the raw scores, then
//                   2^(c·s − m) as one FFMA and one ex2.approx (c = scale ·
//                   log2 e); the row statistics reduced across the four lanes
//                   that share a row by two shuffles; O rescaled only when
//                   some row of the warp found a new max;
//   O += P v        P's accumulator tiles are repacked as bf16 A fragments
//                   in place (an m16n8 C tile pair has the m16k16 A layout),
//                   v's fragments come by ldmatrix.trans; O is 16 x D f32 in
//                   registers per row tile.
// K and V tiles are double-buffered in shared memory: cp.async fetches tile
// t+1 while tile t is multiplied. Rows are padded by 16 bytes, so each
// ldmatrix phase's eight rows fall in distinct banks. Tiles that no mask
// touches run a softmax without the mask's tests, and whole tiles are fetched
// without bounds tests. In the SASS of the unmasked path a warp issues 5.0
// instructions per mma.sync at head dim 64 and 4.6 at 128, rescale included
// (scripts/sass-census.py); exp2f's range fix-up, the separate scale multiply
// and indexed copies made it 9.4 and 7.6, before the per-element mask tests
// the unversioned loop also carried.
// Blocks start from the last queries, the longest under a causal mask.
//
// Head dims 16, 32, 64 and 128 (register arrays need compile-time sizes);
// flash_attention.cuh's wmma kernel takes the others and f32. Masks and the
// NaN of a row that sees no key are as there.
#pragma once

#include "flash_attention.cuh"
#include "simt_mma.cuh"

namespace loom::flash {
inline namespace LOOM_SIMT_ABI {

namespace mma_forward {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// The kernel's tile shape, by default:
// - Two 16-row tiles per warp, so that each k and v fragment read from shared
//   memory feeds two products (shared-memory reads bound a one-tile kernel).
// - Up to head dim 64 the warp's query fragments stay in registers for the
//   whole walk; at 128 they would not fit beside two tiles' output rows (128
//   registers) and are read from shared memory again per key tile, as
//   FlashAttention-2 reads q: per row and key a warp then reads 3/4 of the
//   shared-memory bytes that one row tile with q held reads (k, v and q for
//   32 rows, against k and v for 16).
// - 64 keys per tile, 32 at head dim 128, where 64 keys' scores (64 more
//   registers) spill.
// benchmarks/flash_shapes.cu times the other shapes against these.
template <int D, int RowTiles = 2, int Keys = (D <= 64 ? 64 : 32), bool QHeld = (D <= 64)>
struct Shape {
  static constexpr int kD = D;
  static constexpr int kRowTiles = RowTiles;            // 16-row tiles per warp
  static constexpr int kRows = kWarps * 16 * RowTiles;  // queries per block
  static constexpr int kKeys = Keys;                    // keys per tile
  static constexpr bool kQHeld = QHeld;                 // q's fragments in registers for the walk
  static_assert(D % 16 == 0 && Keys % 16 == 0 && RowTiles >= 1, "whole m16n8k16 tiles");
};

struct Layout {
  Tile q, k[2], v[2];
  size_t bytes;
};
template <class S>
LOOM_SIMT_HOST_DEVICE Layout layout() {
  Carver c;
  Layout l{};
  l.q = c.take(S::kRows, S::kD, sizeof(bf16));
  for (int i = 0; i < 2; ++i) {
    l.k[i] = c.take(S::kKeys, S::kD, sizeof(bf16));
    l.v[i] = c.take(S::kKeys, S::kD, sizeof(bf16));
  }
  l.bytes = c.bytes;
  return l;
}

// A 16-byte copy into shared memory by cp.async: done after cp_async_wait_all().
struct CopyAsync {
  LOOM_SIMT_DEVICE void operator()(void* dst, const void* src) const { cp_async16(dst, src); }
};

// Rows [row0, row0 + kRows) of a [total, D] matrix into a tile by cp.async.
// When every row is there, a thread's pieces sit a fixed stride apart and
// their addresses fold to one base plus constants: no index arithmetic or
// bounds tests per piece, which cost more instructions per key tile than its
// exponentials. A tile crossing the end takes load_rows, which zero-fills.
template <int D, int kRows>
LOOM_SIMT_DEVICE void fetch_rows(bf16* dst, int ld, const bf16* src, int row0, int total) {
  constexpr int kPieces = D / 8;                // 16-byte pieces per row
  constexpr int kStride = kThreads / kPieces;  // rows between a thread's pieces
  static_assert(kThreads % kPieces == 0, "whole rows of pieces per round of the block's threads");
  if (kRows % kStride != 0 || row0 + kRows > total) {  // the first: too few rows for whole rounds
    load_rows(dst, ld, src, row0, total, D, kRows, CopyAsync{});
    return;
  }
  const int t = static_cast<int>(thread_x()), r = t / kPieces, c = t % kPieces * 8;
  bf16* to = dst + r * ld + c;
  const bf16* from = src + (static_cast<size_t>(row0) + r) * D + c;
  LOOM_SIMT_UNROLL
  for (int j = 0; j < kRows / kStride; ++j) cp_async16(to + j * kStride * ld, from + j * kStride * D);
}

// c[mt][2 pair] and c[mt][2 pair + 1] += a[mt] · the two B fragments in b,
// for each of a warp's row tiles mt: the product step of both q kᵀ and P v.
template <int kM, int kN>
LOOM_SIMT_DEVICE void mma_tile_pair(float (&c)[kM][kN][4], const uint32_t (&a)[kM][4], const uint32_t (&b)[4],
                                    int pair) {
  LOOM_SIMT_UNROLL
  for (int mt = 0; mt < kM; ++mt) {
    mma_bf16_16816(c[mt][2 * pair], a[mt], b[0], b[1]);
    mma_bf16_16816(c[mt][2 * pair + 1], a[mt], b[2], b[3]);
  }
}

// One key tile's step of the online softmax, per row tile of the warp: s
// holds the raw scores q·kᵀ and leaves with their unnormalised
// probabilities 2^(c·s − m), c = scale·log2 e > 0; the running max m (log2
// domain) and this lane's part of the running sum l move on. Returns
// whether some row of the warp found a new max, and then the factors alpha
// the output rows must be multiplied by (rescale_rows); otherwise every
// factor is 1 (the common case once a row has seen its largest scores: the
// multiply by 1 is skipped, not approximated). kMasked: some query of the
// block must not see some key of the tile (the causal diagonal, a padding
// mask, the keys' end).
template <bool kMasked, int kM, int kN>
LOOM_SIMT_DEVICE bool softmax_scores(float (&s)[kM][kN][4], float (&m)[kM][2], float (&l)[kM][2],
                                     float (&alpha)[kM][2], float c, const Args& a, int bh,
                                     const int (&rows_q)[kM][2], int k0, int quad) {
  float m_use[kM][2];
  bool unmoved = true;
  LOOM_SIMT_UNROLL
  for (int mt = 0; mt < kM; ++mt) {
    float tile_max[2] = {-INFINITY, -INFINITY};
    LOOM_SIMT_UNROLL
    for (int nt = 0; nt < kN; ++nt)
      LOOM_SIMT_UNROLL
      for (int e = 0; e < 4; ++e) {
        if constexpr (kMasked)
          if (!visible(a, bh, rows_q[mt][e / 2], k0 + nt * 8 + quad * 2 + e % 2)) s[mt][nt][e] = -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[mt][nt][e]);
      }
    LOOM_SIMT_UNROLL
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], shfl_xor(tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], shfl_xor(tile_max[r], 2));
      const float m_new = fmaxf(m[mt][r], tile_max[r] * c);  // c > 0: the max of the scaled scores
      m_use[mt][r] = m_new == -INFINITY ? 0.0f : m_new;       // no key yet: every term 0, not NaN
      alpha[mt][r] = exp2f(m[mt][r] - m_use[mt][r]);         // exactly 1 when the max stays
      unmoved = unmoved && m_new == m[mt][r];
      m[mt][r] = m_new;
      l[mt][r] *= alpha[mt][r];
    }
    LOOM_SIMT_UNROLL
    for (int nt = 0; nt < kN; ++nt)
      LOOM_SIMT_UNROLL
      for (int e = 0; e < 4; ++e) {
        const float p = fast_exp2(fmaf(s[mt][nt][e], c, -m_use[mt][e / 2]));
        s[mt][nt][e] = p;
        l[mt][e / 2] += p;
      }
  }
  return !all_lanes(unmoved);
}

// o[mt] rows group and group + 8 times alpha[mt][0] and alpha[mt][1].
template <int kM, int kDimTiles>
LOOM_SIMT_DEVICE void rescale_rows(float (&o)[kM][kDimTiles][4], const float (&alpha)[kM][2]) {
  LOOM_SIMT_UNROLL
  for (int mt = 0; mt < kM; ++mt)
    LOOM_SIMT_UNROLL
    for (int dt = 0; dt < kDimTiles; ++dt)
      LOOM_SIMT_UNROLL
      for (int e = 0; e < 4; ++e) o[mt][dt][e] *= alpha[mt][e / 2];
}

// softmax_scores, then the output rows rescaled where a max moved.
template <bool kMasked, int kM, int kN, int kDimTiles>
LOOM_SIMT_DEVICE void online_softmax(float (&s)[kM][kN][4], float (&o)[kM][kDimTiles][4], float (&m)[kM][2],
                                     float (&l)[kM][2], float c, const Args& a, int bh, const int (&rows_q)[kM][2],
                                     int k0, int quad) {
  float alpha[kM][2];
  if (softmax_scores<kMasked>(s, m, l, alpha, c, a, bh, rows_q, k0, quad)) rescale_rows(o, alpha);
}

// out = O / l and lse = m·ln 2 + log l for each of a warp's rows below lq,
// the row sums first reduced across the four lanes that share a row.
template <int D, int kM>
LOOM_SIMT_DEVICE void write_output(const Args& a, int bh, const float (&o)[kM][D / 8][4], const float (&m)[kM][2],
                                   const float (&l)[kM][2], const int (&rows_q)[kM][2], int quad) {
  LOOM_SIMT_UNROLL
  for (int mt = 0; mt < kM; ++mt)
    LOOM_SIMT_UNROLL
    for (int r = 0; r < 2; ++r) {
      float sum = l[mt][r];
      sum += shfl_xor(sum, 1);
      sum += shfl_xor(sum, 2);
      const int qi = rows_q[mt][r];
      if (qi >= a.lq) continue;
      const float inv = 1.0f / sum;  // sum == 0 (no visible key): NaN, as the composed softmax gives
      bf16* out = static_cast<bf16*>(a.out) + (static_cast<size_t>(bh) * a.lq + qi) * D + quad * 2;
      LOOM_SIMT_UNROLL
      for (int dt = 0; dt < D / 8; ++dt)
        store_u32(out + dt * 8, pack_bf16x2(o[mt][dt][2 * r] * inv, o[mt][dt][2 * r + 1] * inv));
      if (quad == 0)
        a.lse[static_cast<size_t>(bh) * a.lq + qi] = (m[mt][r] == -INFINITY ? 0.0f : m[mt][r] * kLn2) + logf(sum);
    }
}

// grid (ceil(lq / S::kRows), bh), kThreads threads
template <class S>
LOOM_SIMT_GLOBAL void kernel(Args a) {
  constexpr int D = S::kD, kM = S::kRowTiles, kRows = S::kRows, kKeys = S::kKeys;
  constexpr int kSteps = D / 16;        // k-steps of q kᵀ
  constexpr int kDimTiles = D / 8;      // accumulator tiles of O
  constexpr int kKeyTiles = kKeys / 8;  // accumulator tiles of S
  const Layout L = layout<S>();
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int group = lane / 4, quad = lane % 4;
  // The last query blocks first: under a causal mask they walk the most keys,
  // and starting the longest work first keeps the grid's tail short.
  const int bh = static_cast<int>(block_y()), q0 = static_cast<int>(grid_dim_x() - 1 - block_x()) * kRows;
  const bf16* q = static_cast<const bf16*>(a.q) + static_cast<size_t>(bh) * a.lq * D;
  const bf16* k = static_cast<const bf16*>(a.k) + static_cast<size_t>(bh) * a.lk * D;
  const bf16* v = static_cast<const bf16*>(a.v) + static_cast<size_t>(bh) * a.lk * D;
  const int tiles = (key_end(a, q0, kRows) + kKeys - 1) / kKeys;

  fetch_rows<D, kRows>(at<bf16>(L.q), L.q.ld, q, q0, a.lq);
  if (tiles > 0) {
    fetch_rows<D, kKeys>(at<bf16>(L.k[0]), L.k[0].ld, k, 0, a.lk);
    fetch_rows<D, kKeys>(at<bf16>(L.v[0]), L.v[0].ld, v, 0, a.lk);
  }
  cp_async_commit();
  cp_async_wait_all();
  sync_block();

  // This warp's query rows as A fragments, per row tile and k-step. ldmatrix
  // matrices: rows 0-7 | 8-15 by columns 0-7, then the same by columns 8-15.
  const int w0 = warp * 16 * kM;
  const bf16* q_rows = at<bf16>(L.q) + (w0 + (lane / 8) % 2 * 8 + lane % 8) * L.q.ld + lane / 16 * 8;
  const auto load_q = [&](uint32_t(&f)[kM][4], int st) {
    LOOM_SIMT_UNROLL
    for (int mt = 0; mt < kM; ++mt) ldmatrix_x4(f[mt], q_rows + mt * 16 * L.q.ld + st * 16);
  };
  uint32_t qf[S::kQHeld ? kSteps : 1][kM][4];
  if constexpr (S::kQHeld) {
    LOOM_SIMT_UNROLL
    for (int st = 0; st < kSteps; ++st) load_q(qf[st], st);
  }

  float o[kM][kDimTiles][4] = {};
  // Per row tile, rows group and group + 8: the running max (log2 domain)
  // and this lane's part of the running sum.
  float m[kM][2], l[kM][2];
  int rows_q[kM][2];
  LOOM_SIMT_UNROLL
  for (int mt = 0; mt < kM; ++mt)
    LOOM_SIMT_UNROLL
    for (int r = 0; r < 2; ++r) {
      m[mt][r] = -INFINITY;
      l[mt][r] = 0.0f;
      rows_q[mt][r] = q0 + w0 + mt * 16 + group + 8 * r;
    }
  const float scale_log2 = a.scale * kLog2e;

  // The buffers by a select, not an index: a run-time index into L's arrays
  // would put L on the stack.
  const auto k_buffer = [&](int i) { return i == 0 ? at<bf16>(L.k[0]) : at<bf16>(L.k[1]); };
  const auto v_buffer = [&](int i) { return i == 0 ? at<bf16>(L.v[0]) : at<bf16>(L.v[1]); };
  const int ld = L.k[0].ld;  // every tile's
  for (int t = 0; t < tiles; ++t) {
    const int buf = t % 2, k0 = t * kKeys;
    if (t + 1 < tiles) {  // the other buffer was released by the last tile's sync_block
      fetch_rows<D, kKeys>(k_buffer(1 - buf), ld, k, k0 + kKeys, a.lk);
      fetch_rows<D, kKeys>(v_buffer(1 - buf), ld, v, k0 + kKeys, a.lk);
    }
    cp_async_commit();
    const bf16* sk = k_buffer(buf);
    const bf16* sv = v_buffer(buf);

    // S = q kᵀ. ldmatrix matrices: keys 0-7 by dims 0-7 | 8-15 (one key
    // tile's two B registers), then keys 8-15 likewise (the next tile's).
    float s[kM][kKeyTiles][4] = {};
    {
      const bf16* rows = sk + (lane / 16 * 8 + lane % 8) * ld + (lane / 8) % 2 * 8;
      LOOM_SIMT_UNROLL
      for (int st = 0; st < kSteps; ++st) {
        if constexpr (!S::kQHeld) load_q(qf[0], st);
        LOOM_SIMT_UNROLL
        for (int pair = 0; pair < kKeyTiles / 2; ++pair) {
          uint32_t b[4];
          ldmatrix_x4(b, rows + pair * 16 * ld + st * 16);
          mma_tile_pair(s, qf[S::kQHeld ? st : 0], b, pair);
        }
      }
    }

    // A tile every query of the block sees whole skips the mask's tests.
    const bool whole = k0 + kKeys <= a.lk && a.key_keep == nullptr &&
                       (!a.causal || k0 + kKeys - 1 <= q0 + (a.lk - a.lq));
    if (whole)
      online_softmax<false>(s, o, m, l, scale_log2, a, bh, rows_q, k0, quad);
    else
      online_softmax<true>(s, o, m, l, scale_log2, a, bh, rows_q, k0, quad);

    // O += P v, 16 keys per step. ldmatrix.trans matrices: keys 0-7 | 8-15
    // by dims 0-7 (one output tile's two B registers), then dims 8-15.
    {
      const bf16* rows = sv + ((lane / 8) % 2 * 8 + lane % 8) * ld + lane / 16 * 8;
      LOOM_SIMT_UNROLL
      for (int st = 0; st < kKeys / 16; ++st) {
        uint32_t pf[kM][4];
        LOOM_SIMT_UNROLL
        for (int mt = 0; mt < kM; ++mt) {
          pf[mt][0] = pack_bf16x2(s[mt][2 * st][0], s[mt][2 * st][1]);
          pf[mt][1] = pack_bf16x2(s[mt][2 * st][2], s[mt][2 * st][3]);
          pf[mt][2] = pack_bf16x2(s[mt][2 * st + 1][0], s[mt][2 * st + 1][1]);
          pf[mt][3] = pack_bf16x2(s[mt][2 * st + 1][2], s[mt][2 * st + 1][3]);
        }
        LOOM_SIMT_UNROLL
        for (int pair = 0; pair < kDimTiles / 2; ++pair) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, rows + st * 16 * ld + pair * 16);
          mma_tile_pair(o, pf, b, pair);
        }
      }
    }
    cp_async_wait_all();
    sync_block();  // the next tile is in; everyone is done with this one
  }

  write_output<D>(a, bh, o, m, l, rows_q, quad);
}

template <class S>
auto launch(const Args& a, Stream stream) {
  const auto blocks = static_cast<unsigned>((a.lq + S::kRows - 1) / S::kRows);
  return simt::launch(Dim3(blocks, static_cast<unsigned>(a.bh)), Dim3(kThreads), layout<S>().bytes, stream,
                      kernel<S>, a);
}

}  // namespace mma_forward

// registers.template operator()<D>() for the head dims the register-resident
// kernels take (16, 32, 64, 128; their arrays need compile-time sizes), else
// otherwise().
template <class Registers, class Otherwise>
auto by_register_head_dim(int d, Registers&& registers, Otherwise&& otherwise) {
  switch (d) {
    case 16: return registers.template operator()<16>();
    case 32: return registers.template operator()<32>();
    case 64: return registers.template operator()<64>();
    case 128: return registers.template operator()<128>();
    default: return otherwise();
  }
}

// The forward of either kernel: the register-resident one for bf16 where it
// takes the head dim, the shared-memory one otherwise.
template <class T>
auto launch_forward(const Args& a, Stream stream) {
  const auto tiles = [&] { return launch_forward_tiles<T>(a, stream); };
  if constexpr (std::is_same_v<T, bf16>)
    return by_register_head_dim(a.d, [&]<int D>() { return mma_forward::launch<mma_forward::Shape<D>>(a, stream); }, tiles);
  else
    return tiles();
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::flash
