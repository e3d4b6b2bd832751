// Flash attention forward for bf16 on Hopper's warpgroup products (wgmma,
// sm_90a): the kernel variant flash_forward_wgmma, at head dims 64 and 128.
//
// Floor: as flash_attention.cuh's forward, 4·BH·Lq·Lk·D FLOPs (half when
// causal), (2·Lq + 2·Lk)·BH·D elements moved: compute-bound.
//
// Why: the mma.sync forward (flash_forward_mma.cuh) issues one instruction
// per 4,096 FLOPs and an ldmatrix per two, and ran at 0.22-0.30 of the bf16
// GEMM rate on an H200; cuBLAS and cuDNN reach theirs on wgmma, whose
// operands the tensor cores read from shared memory themselves: a warp
// issues one instruction per 65,536 FLOPs (its quarter of m64n128k16).
//
// A block of two warpgroups (256 threads) owns 128 queries of one head, 64
// each (wgmma's M), so k and v cross L2 once per 128 queries. Per 128-key tile
// a warpgroup computes
//   S = q kᵀ        D/16 wgmma m64n128k16, q and k K-major in shared memory;
//   online softmax  flash_forward_mma.cuh's, on the same accumulator layout
//                   (a warp's 16 rows of S as 16 column tiles of mma.sync's C);
//   O += P v        8 wgmma m64nDk16, P repacked from S's registers into
//                   A fragments (as the mma.sync kernel does), v N-major in
//                   shared memory.
// q, k and v sit in shared memory as core matrices (8 rows of 16 bytes, 128
// contiguous bytes), row group by row group: element (r, c) of a tile with D
// columns at ((r/8)·(D/8) + c/8)·128 + (r%8)·16 + (c%8)·2. Thread i's p-th
// 16-byte piece lands at byte 16·(i + p·256), so eight consecutive threads
// fill one core matrix and a warp's stores touch every bank once; their global
// reads are 64 contiguous bytes of each of eight rows. k and v are
// double-buffered: cp.async fetches tile t+1 while tile t is multiplied.
// Shared memory: 160 KiB at head dim 128 (one block an SM), 80 KiB at 64.
//
// kOverlap (the variant flash_forward_wgmma_overlap) is FlashAttention-3's
// pipelining within a warpgroup: tile t's q kᵀ and tile t-1's P v are issued
// back to back, the warpgroup waits for the scores only (wgmma_wait<1>) and
// computes their softmax while P v runs on the tensor cores, then waits for
// it and rescales O. k runs a tile ahead of v in the double buffers, and the
// first tile's scores and the last tile's P v stand outside the loop, so no
// branch decides whether a product is in flight.
//
// Not done yet, for a GPU to decide by timing: the copy engine (TMA) with a
// producer warp instead of cp.async from every thread, the 128-byte swizzle,
// and the ping-pong of the two warpgroups' softmax and products.
#pragma once

#include "flash_forward_mma.cuh"
#include "simt_wgmma.cuh"

namespace loom::flash {
inline namespace LOOM_SIMT_ABI {

namespace wgmma_forward {

inline constexpr int kWarpgroups = 2;
inline constexpr int kBlockThreads = kWarpgroups * 128;
inline constexpr int kRows = kWarpgroups * 64;  // queries per block
inline constexpr int kKeys = 128;               // keys per tile

// Which kernel a bf16 forward at head dims 64 and 128 runs: the mma.sync one
// (off), this one, or this one with its products overlapping the softmax.
enum class Mode { off, plain, overlapped };

// Byte offsets of the tiles in dynamic shared memory.
template <int D>
struct Layout {
  static constexpr size_t kQ = 0;
  static constexpr size_t kTile = static_cast<size_t>(kKeys) * D * 2;  // one k or v tile
  static constexpr size_t kK0 = kQ + static_cast<size_t>(kRows) * D * 2, kK1 = kK0 + kTile;
  static constexpr size_t kV0 = kK1 + kTile, kV1 = kV0 + kTile;
  static constexpr size_t kBytes = kV1 + kTile;
};

// Whether the kernel takes head dim d within `max_shared_bytes` a block.
inline bool takes_head_dim(int d, size_t max_shared_bytes) {
  return (d == 64 && Layout<64>::kBytes <= max_shared_bytes) || (d == 128 && Layout<128>::kBytes <= max_shared_bytes);
}

// Bytes between a tile's consecutive 8-row groups: the stride offset of a
// K-major descriptor, the leading offset of v's N-major one.
template <int D>
inline constexpr uint32_t kRowGroupBytes = D * 16;

// Rows [row0, row0 + R) of a [total, D] matrix into a tile in the core-matrix
// layout by cp.async, zeros past `total`.
template <int D, int R>
LOOM_SIMT_DEVICE void fetch_tile(unsigned char* dst, const bf16* src, int row0, int total) {
  constexpr int kPieces = R * D / 8;  // 16-byte pieces
  static_assert(kPieces % kBlockThreads == 0, "whole rounds of the block's threads");
  const bool whole = row0 + R <= total;
  LOOM_SIMT_UNROLL
  for (int i = 0; i < kPieces / kBlockThreads; ++i) {
    const int p = static_cast<int>(thread_x()) + i * kBlockThreads;
    const int core = p / 8, row = core / (D / 8) * 8 + p % 8, col = core % (D / 8) * 8;
    if (whole || row0 + row < total)
      cp_async16(dst + p * 16, src + (static_cast<size_t>(row0) + row) * D + col);
    else
      zero16(dst + p * 16);
  }
}

// grid (ceil(lq / kRows), bh), kBlockThreads threads. kOverlap: tile t's
// scores are computed while tile t-1's P v runs (above).
template <int D, bool kOverlap>
LOOM_SIMT_GLOBAL void kernel(Args a) {
#if defined(__CUDACC__) && !defined(LOOM_SIMT_WGMMA)
  (void)a;
  __trap();  // built for a target without wgmma; launched only where it has them
#else
  using mma_forward::kLog2e;
  using L = Layout<D>;
  constexpr int kDimTiles = D / 8, kKeyTiles = kKeys / 8, kValueSteps = kKeys / 16;
  constexpr uint32_t kGroup = kRowGroupBytes<D>;
  unsigned char* shared = dynamic_shared<unsigned char>();
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int group = lane / 4, quad = lane % 4, warpgroup = warp / 4;
  // The last query blocks first: under a causal mask they walk the most keys.
  const int bh = static_cast<int>(block_y()), q0 = static_cast<int>(grid_dim_x() - 1 - block_x()) * kRows;
  const bf16* q = static_cast<const bf16*>(a.q) + static_cast<size_t>(bh) * a.lq * D;
  const bf16* k = static_cast<const bf16*>(a.k) + static_cast<size_t>(bh) * a.lk * D;
  const bf16* v = static_cast<const bf16*>(a.v) + static_cast<size_t>(bh) * a.lk * D;
  const int tiles = (key_end(a, q0, kRows) + kKeys - 1) / kKeys;
  // Tile t's k and v buffers, by a select (a run-time index into an array of
  // offsets would put it on the stack).
  const auto k_tile = [&](int t) { return shared + (t % 2 == 0 ? L::kK0 : L::kK1); };
  const auto v_tile = [&](int t) { return shared + (t % 2 == 0 ? L::kV0 : L::kV1); };

  fetch_tile<D, kRows>(shared + L::kQ, q, q0, a.lq);
  if (tiles > 0) {
    fetch_tile<D, kKeys>(k_tile(0), k, 0, a.lk);
    fetch_tile<D, kKeys>(v_tile(0), v, 0, a.lk);
  }
  cp_async_commit();
  cp_async_wait_all();
  fence_async_shared();  // the tensor cores read what cp.async wrote
  sync_block();

  // This warp's 16 query rows: the warpgroup's 64 from q0 + 64·warpgroup.
  const int row0 = q0 + warp * 16;
  float o[1][kDimTiles][4] = {};
  float m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
  const int rows_q[1][2] = {{row0 + group, row0 + group + 8}};
  const float scale_log2 = a.scale * kLog2e;
  const unsigned char* q_rows = shared + L::kQ + warpgroup * 8 * kGroup;  // 64 rows: 8 row groups

  // S = q kᵀ, 16 dims a product (the next two core matrices along K), issued
  // as one group.
  const auto issue_scores = [&](float(&s)[1][kKeyTiles][4], const unsigned char* sk) {
    LOOM_SIMT_UNROLL
    for (int st = 0; st < D / 16; ++st)
      wgmma_ss<kKeys>(s[0], wgmma_descriptor(q_rows + st * 256, 128, kGroup),
                      wgmma_descriptor(sk + st * 256, 128, kGroup), st > 0);
    wgmma_commit();
  };
  // O += P v, 16 keys a product (two 8-key row groups of v), issued as one group.
  const auto issue_values = [&](const uint32_t(&p)[kValueSteps][4], const unsigned char* sv) {
    LOOM_SIMT_UNROLL
    for (int st = 0; st < kValueSteps; ++st)
      wgmma_rs_nmajor<D>(o[0], p[st], wgmma_descriptor(sv + st * 2 * kGroup, kGroup, 128), true);
    wgmma_commit();
  };
  // The softmax of tile k0's scores (mma_forward::softmax_scores): a tile
  // every row of this warp sees whole skips the mask's tests.
  const auto softmax = [&](float(&s)[1][kKeyTiles][4], int k0, float(&alpha)[1][2]) {
    const bool whole = k0 + kKeys <= a.lk && a.key_keep == nullptr &&
                       (!a.causal || k0 + kKeys - 1 <= row0 + (a.lk - a.lq));
    return whole ? mma_forward::softmax_scores<false>(s, m, l, alpha, scale_log2, a, bh, rows_q, k0, quad)
                 : mma_forward::softmax_scores<true>(s, m, l, alpha, scale_log2, a, bh, rows_q, k0, quad);
  };
  // P as bf16 A fragments: a C tile pair of S has the A layout.
  const auto pack = [&](const float(&s)[1][kKeyTiles][4], uint32_t(&p)[kValueSteps][4]) {
    LOOM_SIMT_UNROLL
    for (int st = 0; st < kValueSteps; ++st) {
      p[st][0] = pack_bf16x2(s[0][2 * st][0], s[0][2 * st][1]);
      p[st][1] = pack_bf16x2(s[0][2 * st][2], s[0][2 * st][3]);
      p[st][2] = pack_bf16x2(s[0][2 * st + 1][0], s[0][2 * st + 1][1]);
      p[st][3] = pack_bf16x2(s[0][2 * st + 1][2], s[0][2 * st + 1][3]);
      wgmma_pin(p[st]);
    }
  };
  // Every thread's copies are in and visible to the tensor cores, and every
  // warpgroup is done with the buffers the next tile's copies overwrite.
  const auto tile_done = [] {
    cp_async_wait_all();
    fence_async_shared();
    sync_block();
  };

  if constexpr (!kOverlap) {
    for (int t = 0; t < tiles; ++t) {
      if (t + 1 < tiles) {  // the other buffers were released by the last tile's sync_block
        fetch_tile<D, kKeys>(k_tile(t + 1), k, (t + 1) * kKeys, a.lk);
        fetch_tile<D, kKeys>(v_tile(t + 1), v, (t + 1) * kKeys, a.lk);
      }
      cp_async_commit();
      float s[1][kKeyTiles][4];
      wgmma_fence();
      issue_scores(s, k_tile(t));
      wgmma_wait<0>();
      wgmma_pin(s[0]);
      float alpha[1][2];
      if (softmax(s, t * kKeys, alpha)) mma_forward::rescale_rows(o, alpha);
      uint32_t p[kValueSteps][4];
      pack(s, p);
      wgmma_pin(o[0]);
      wgmma_fence();
      issue_values(p, v_tile(t));
      wgmma_wait<0>();
      wgmma_pin(o[0]);
      tile_done();
    }
  } else if (tiles > 0) {
    // k runs a tile ahead of v: in the loop's step t, k's buffers hold tiles
    // t and t+1 (in flight), v's tiles t-1 and t (in flight).
    uint32_t p[kValueSteps][4];
    {
      if (tiles > 1) fetch_tile<D, kKeys>(k_tile(1), k, kKeys, a.lk);
      cp_async_commit();
      float s[1][kKeyTiles][4], alpha[1][2];
      wgmma_fence();
      issue_scores(s, k_tile(0));
      wgmma_wait<0>();
      wgmma_pin(s[0]);
      softmax(s, 0, alpha);  // O is still 0: nothing to rescale
      pack(s, p);
      tile_done();
    }
    for (int t = 1; t < tiles; ++t) {
      if (t + 1 < tiles) fetch_tile<D, kKeys>(k_tile(t + 1), k, (t + 1) * kKeys, a.lk);
      fetch_tile<D, kKeys>(v_tile(t), v, t * kKeys, a.lk);
      cp_async_commit();
      float s[1][kKeyTiles][4], alpha[1][2];
      wgmma_pin(o[0]);
      wgmma_fence();
      issue_scores(s, k_tile(t));
      issue_values(p, v_tile(t - 1));
      wgmma_wait<1>();  // the scores; tile t-1's P v may still run
      wgmma_pin(s[0]);
      const bool moved = softmax(s, t * kKeys, alpha);
      wgmma_wait<0>();
      wgmma_pin(o[0]);
      // P v read p until here: the next P must not be packed into its
      // registers earlier (the compiler does not see the product's reads).
      LOOM_SIMT_UNROLL
      for (int st = 0; st < kValueSteps; ++st) wgmma_pin(p[st]);
      if (moved) mma_forward::rescale_rows(o, alpha);
      pack(s, p);
      tile_done();
    }
    wgmma_pin(o[0]);
    wgmma_fence();
    issue_values(p, v_tile(tiles - 1));
    wgmma_wait<0>();
    wgmma_pin(o[0]);
  }

  mma_forward::write_output<D>(a, bh, o, m, l, rows_q, quad);
#endif
}

template <int D, bool kOverlap>
auto launch(const Args& a, Stream stream) {
  const auto blocks = static_cast<unsigned>((a.lq + kRows - 1) / kRows);
  return simt::launch(Dim3(blocks, static_cast<unsigned>(a.bh)), Dim3(kBlockThreads), Layout<D>::kBytes, stream,
                      kernel<D, kOverlap>, a);
}

// The forward at a head dim takes_head_dim accepts.
inline auto launch_by_head_dim(const Args& a, Stream stream, Mode mode) {
  if (mode == Mode::overlapped) return a.d == 64 ? launch<64, true>(a, stream) : launch<128, true>(a, stream);
  return a.d == 64 ? launch<64, false>(a, stream) : launch<128, false>(a, stream);
}

}  // namespace wgmma_forward

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::flash
