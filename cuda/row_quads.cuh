// Rows of f32 (or bf16) in whole quads (4 values) held in registers: a warp
// per row up to 1024 columns, the four warps of a block per row up to 4096.
// Lane l of a row's `Lanes` lanes holds quads l, l + Lanes, ..., read and
// written 16 bytes of f32 (8 of bf16) at a time, every load of a row issued
// before the first store. The row kernels that walk a row in a loop (a
// block per row, block_reduce.cuh) read it once per pass and wait at block
// barriers between passes: a 768-wide norm ran at a third of an H200's copy
// rate that way. Used by the norms (norm.cuh) and softmax (softmax.cuh).
#pragma once

#include "block_reduce.cuh"
#include "packs.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

inline constexpr unsigned kWarpRowWarps = 4;  // warps per block
inline constexpr unsigned kWarpRowThreads = 32 * kWarpRowWarps;

// How a row of `quads` quads is spread: over one warp or the block's four,
// with the fewest quads per lane the kernels are built for that hold it (so
// no lane keeps idle registers); warps == 0: too wide.
struct RowFit {
  int warps = 0, quads = 0;
};
inline RowFit row_fit(int64_t quads) {
  for (int q : {1, 2, 4, 6, 8})
    if (quads <= 32 * q) return {1, q};
  for (int q : {4, 8})
    if (quads <= int64_t{kWarpRowThreads} * q) return {static_cast<int>(kWarpRowWarps), q};
  return {};
}

// The lane's quads of a row of `quads` quads as f32; those past the row's
// end, and all of them for a null row (an absent operand), are 0.
template <int Lanes, int Quads, class U>
LOOM_SIMT_DEVICE void load_lane_quads(const U* row, int64_t quads, unsigned lane, Quad<float> (&out)[Quads]) {
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    const int64_t q = lane + Lanes * p;
    Quad<U> in{};
    if (row && q < quads) in = load_quad(row, q);
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) out[p].v[k] = to_float(in.v[k]);
  }
}

// Asks L2 for the lane's quads of a row (none when row is null).
template <int Lanes, int Quads, class U>
LOOM_SIMT_DEVICE void prefetch_lane_quads(const U* row, int64_t quads, unsigned lane) {
  if (!row) return;
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    const int64_t q = lane + Lanes * p;
    if (q < quads) prefetch_l2(row + q * 4);
  }
}

// Rounded once into U.
template <int Lanes, int Quads, class U>
LOOM_SIMT_DEVICE void store_lane_quads(U* row, int64_t quads, unsigned lane, const Quad<float> (&in)[Quads]) {
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p) {
    const int64_t q = lane + Lanes * p;
    if (q >= quads) continue;
    Quad<U> out;
    LOOM_SIMT_UNROLL
    for (int k = 0; k < 4; ++k) out.v[k] = from_float<U>(in[p].v[k]);
    store_quad(row, q, out);
  }
}

// f(value, quad, k) over the lane's values that lie in the row.
template <int Lanes, int Quads, class F>
LOOM_SIMT_DEVICE void for_lane_values(const Quad<float> (&v)[Quads], int64_t quads, unsigned lane, F&& f) {
  LOOM_SIMT_UNROLL
  for (int p = 0; p < Quads; ++p)
    if (lane + Lanes * p < quads) {
      LOOM_SIMT_UNROLL
      for (int k = 0; k < 4; ++k) f(v[p].v[k], p, k);
    }
}

// The row's total of the lanes' sums (each lane's in f32, at most 32
// values; the warp's and the block's in double), and its maximum. Every lane
// of the row must call them, each getting the same bits; with Warps == 4 that
// is the whole block (the scratch of block_reduce.cuh at the start of its
// dynamic shared memory).
template <int Warps>
LOOM_SIMT_DEVICE double row_sum(float lane_sum) {
  const double v = static_cast<double>(lane_sum);
  if constexpr (Warps == 1)
    return warp_sum(v);
  else
    return block_sum(v, kWarpRowThreads);
}
template <int Warps>
LOOM_SIMT_DEVICE float row_max(float lane_max) {
  if constexpr (Warps == 1)
    return warp_reduce<float, true>(lane_max);
  else
    return block_max(lane_max, kWarpRowThreads);
}
template <int Warps>
LOOM_SIMT_DEVICE float row_mean(float lane_sum, int64_t n) {
  return static_cast<float>(row_sum<Warps>(lane_sum) / static_cast<double>(n));
}
// Shared memory for block-wide rows' reductions.
inline size_t row_quads_shared_bytes(int warps) { return warps == 1 ? 0 : kBlockReduceSharedBytes; }

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
