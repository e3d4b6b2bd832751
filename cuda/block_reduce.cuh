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

// f(row[j], j) for this thread's j = t, t + threads, ... < n, in that order,
// four loads issued before each four calls. Walking a row one load at a time
// kept too few bytes in flight: the cross-entropy over 50k-wide rows ran at a
// quarter of an H200's copy rate. Tried and slower there: holding whole rows
// in registers (so many registers that one block of 512 threads fit on a
// multiprocessor), and bounds-checked batches of four for the rows' ends.
template <class T, class F>
LOOM_SIMT_DEVICE void for_each_in_row(const T* row, int64_t n, unsigned threads, F&& f) {
  const int64_t step = threads;
  int64_t j = thread_x();
  for (; j + 3 * step < n; j += 4 * step) {
    const T v0 = row[j], v1 = row[j + step], v2 = row[j + 2 * step], v3 = row[j + 3 * step];
    f(v0, j);
    f(v1, j + step);
    f(v2, j + 2 * step);
    f(v3, j + 3 * step);
  }
  for (; j < n; j += step) f(row[j], j);
}

// The same over two rows at once: f(a[j], b[j], j).
template <class T, class F>
LOOM_SIMT_DEVICE void for_each_in_rows(const T* a, const T* b, int64_t n, unsigned threads, F&& f) {
  const int64_t step = threads;
  int64_t j = thread_x();
  for (; j + 3 * step < n; j += 4 * step) {
    const T a0 = a[j], a1 = a[j + step], a2 = a[j + 2 * step], a3 = a[j + 3 * step];
    const T b0 = b[j], b1 = b[j + step], b2 = b[j + 2 * step], b3 = b[j + 3 * step];
    f(a0, b0, j);
    f(a1, b1, j + step);
    f(a2, b2, j + 2 * step);
    f(a3, b3, j + 3 * step);
  }
  for (; j < n; j += step) f(a[j], b[j], j);
}

// max where a NaN wins, as the CPU's reductions.
template <class T>
LOOM_SIMT_DEVICE T max_nan(T a, T b) {
  return (b > a || b != b) && a == a ? b : a;
}

// Over the 32 lanes of this warp, every lane getting the same bits.
template <class T, bool Max>
LOOM_SIMT_DEVICE T warp_reduce(T v) {
  for (int mask = 16; mask > 0; mask /= 2) {
    const T other = shfl_xor(v, mask);
    v = Max ? max_nan(v, other) : v + other;
  }
  return v;
}
template <class T>
LOOM_SIMT_DEVICE T warp_sum(T v) {
  return warp_reduce<T, false>(v);
}

template <class T, bool Max>
LOOM_SIMT_DEVICE T block_reduce(T v, unsigned threads, T* scratch) {
  v = warp_reduce<T, Max>(v);
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
