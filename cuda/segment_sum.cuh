// The order-fixed half of the deterministic index_add (dim 0, the embedding
// backward): once (index, position) pairs are sorted by index, stably, each
// run of equal indices is one destination row, summed by one warp in
// position order and added once. No atomics, so the result is the same bits
// on every run; on a zero destination it equals the CPU's sequential sum.
//
// Floor: one add per source element; reads the n source rows once (plus the
// sorted keys), writes each touched destination row once. The sort (cub's
// stable radix sort on the device, std::stable_sort on the emulator) comes
// first: index.cu.
//
// Compiles under nvcc and on the host SIMT emulator (simt.cuh).
#pragma once

#include <cstdint>

#include "simt.cuh"

namespace loom::segment_sum {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;

// values[i] = i for i < n: the positions the sort carries along.
LOOM_SIMT_GLOBAL void iota_kernel(int32_t* values, int64_t n) {
  const int64_t i = static_cast<int64_t>(block_x()) * kThreads + thread_x();
  if (i < n) values[i] = static_cast<int32_t>(i);
}

// For every run of equal keys in sorted `keys` [n] (with their source
// positions): dst[key, :] += the sum of src[position, :] over the run, in
// position order. src [*, inner], dst [*, inner], contiguous. One warp per
// sorted entry; only the first entry of a run does the work.
template <class T>
LOOM_SIMT_GLOBAL void rows_kernel(const int32_t* keys, const int32_t* positions, int64_t n, const T* src,
                                  int64_t inner, T* dst) {
  const int64_t i = static_cast<int64_t>(block_x()) * kWarps + thread_x() / 32;
  if (i >= n || (i > 0 && keys[i] == keys[i - 1])) return;  // past the end, or not a run's start
  int64_t end = i + 1;
  while (end < n && keys[end] == keys[i]) ++end;
  T* row = dst + static_cast<int64_t>(keys[i]) * inner;
  for (int64_t c = thread_x() % 32; c < inner; c += 32) {
    T acc = T(0);
    for (int64_t j = i; j < end; ++j) acc += src[static_cast<int64_t>(positions[j]) * inner + c];
    row[c] += acc;
  }
}

inline unsigned blocks_for(int64_t n, int per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::segment_sum
