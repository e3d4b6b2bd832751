// Block-wide sums and maxima for the simt kernels (norm.cuh, softmax.cuh,
// cross_entropy.cuh). The block is `threads` threads, a multiple of 32 and at
// most 1024; every thread gets the result, and bit for bit the same one:
// within a warp a butterfly of shuffles (partners combine the same two
// values, and a + b == b + a), then the warps' partials in warp order. So the
// reductions are deterministic. The scratch holds 32 values in shared memory
// (kBlockReduceSharedBytes); it is free again when the call returns.
#pragma once

#include "simt.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

inline constexpr size_t kBlockReduceSharedBytes = 32 * sizeof(double);

// Threads for a block that walks one row of n elements (whole warps).
inline unsigned row_threads(int64_t n) { return n >= 2048 ? 512 : n >= 512 ? 256 : n >= 128 ? 128 : 32; }

// max where a NaN wins, as the CPU's reductions.
template <class T>
LOOM_SIMT_DEVICE T max_nan(T a, T b) {
  return (b > a || b != b) && a == a ? b : a;
}

template <class T, bool Max>
LOOM_SIMT_DEVICE T block_reduce(T v, unsigned threads, T* scratch) {
  for (int mask = 16; mask > 0; mask /= 2) {
    const T other = shfl_xor(v, mask);
    v = Max ? max_nan(v, other) : v + other;
  }
  const unsigned warp = thread_x() / 32;
  if (thread_x() % 32 == 0) scratch[warp] = v;
  sync_block();
  T total = scratch[0];
  for (unsigned w = 1; w < threads / 32; ++w) total = Max ? max_nan(total, scratch[w]) : total + scratch[w];
  sync_block();  // everyone has read the scratch before it is reused
  return total;
}

// With the scratch at the start of the block's dynamic shared memory (the
// row kernels launch with kBlockReduceSharedBytes of it).
template <class T>
LOOM_SIMT_DEVICE T block_sum(T v, unsigned threads) {
  return block_reduce<T, false>(v, threads, dynamic_shared<T>());
}
template <class T>
LOOM_SIMT_DEVICE T block_max(T v, unsigned threads) {
  return block_reduce<T, true>(v, threads, dynamic_shared<T>());
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
