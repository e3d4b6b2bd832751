// Block-wide sums and maxima for the simt kernels (norm.cuh, softmax.cuh,
// cross_entropy.cuh). The block is `threads` threads, a multiple of 32 and at
// most 1024; every thread gets the result, and bit for bit the same one:
// within a warp a butterfly of shuffles (partners combine the same two
// values, and a + b == b + a), then the warps' partials in warp order. So the
// reductions are deterministic. The scratch holds 32 values in shared memory
// (kBlockReduceSharedBytes); it is free again when the call returns.
#pragma once

#include "packs.cuh"
#include "simt.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

inline constexpr size_t kBlockReduceSharedBytes = 32 * sizeof(double);

// Threads for a block that walks one row of n elements (whole warps).
inline unsigned row_threads(int64_t n) { return n >= 2048 ? 512 : n >= 512 ? 256 : n >= 128 ? 128 : 32; }

// A block's walk over one row: this thread's elements, several loads issued
// before the calls. A row that starts on a 16-byte boundary is read in 16-byte packs:
// thread t takes packs t, t + threads, ..., four in flight (the last up to
// three together; for_each_pack), then the last n % pack elements one each.
// Any other row: elements t, t + threads, ..., four loads in flight. Walking
// a row one scalar load at a time kept too few bytes in flight: the
// cross-entropy over 50k-wide rows ran at a quarter of an H200's copy rate.
// Tried and slower there: holding whole rows in registers with 512-thread
// blocks (so many registers that one block fit on a multiprocessor; rows of
// up to 4096 are held in registers by 128-thread blocks instead:
// row_quads.cuh), and bounds-checked batches of four scalar loads for the
// rows' ends.
// for_each_pack_in_row hands the packs over whole: on_pack(pack, index of its
// first element) for each pack, on_element(row[j], j) for every other
// element (the row's tail, or a whole row off the boundary).
// for_each_in_row calls f(row[j], j) for every element, packed or not.
template <class T, class OnPack, class OnElement>
LOOM_SIMT_DEVICE void for_each_pack_in_row(const T* row, int64_t n, unsigned threads, OnPack&& on_pack,
                                           OnElement&& on_element) {
  const int64_t step = threads;
  if (on_pack_boundary(row)) {
    constexpr int kP = kPack<T>;
    const int64_t packs = n / kP;
    for_each_pack(row, packs, thread_x(), step, [&](const Pack<T>& v, int64_t p, int) { on_pack(v, p * kP); });
    for (int64_t j = packs * kP + thread_x(); j < n; j += step) on_element(row[j], j);
    return;
  }
  int64_t j = thread_x();
  for (; j + 3 * step < n; j += 4 * step) {
    const T v0 = row[j], v1 = row[j + step], v2 = row[j + 2 * step], v3 = row[j + 3 * step];
    on_element(v0, j);
    on_element(v1, j + step);
    on_element(v2, j + 2 * step);
    on_element(v3, j + 3 * step);
  }
  for (; j < n; j += step) on_element(row[j], j);
}

template <class T, class F>
LOOM_SIMT_DEVICE void for_each_in_row(const T* row, int64_t n, unsigned threads, F&& f) {
  for_each_pack_in_row(
      row, n, threads,
      [&](const Pack<T>& v, int64_t first) {
        LOOM_SIMT_UNROLL
        for (int k = 0; k < kPack<T>; ++k) f(v.v[k], first + k);
      },
      f);
}

// The same over two rows at once: f(a[j], b[j], j) (in packs, two of each
// row in flight, when both rows start on a 16-byte boundary).
template <class T, class F>
LOOM_SIMT_DEVICE void for_each_in_rows(const T* a, const T* b, int64_t n, unsigned threads, F&& f) {
  const int64_t step = threads;
  if (on_pack_boundary(a) && on_pack_boundary(b)) {
    constexpr int kP = kPack<T>;
    const int64_t packs = n / kP;
    int64_t p = thread_x();
    for (; p + step < packs; p += 2 * step) {
      const Pack<T> a0 = load_pack(a, p), a1 = load_pack(a, p + step);
      const Pack<T> b0 = load_pack(b, p), b1 = load_pack(b, p + step);
      LOOM_SIMT_UNROLL
      for (int k = 0; k < kP; ++k) f(a0.v[k], b0.v[k], p * kP + k);
      LOOM_SIMT_UNROLL
      for (int k = 0; k < kP; ++k) f(a1.v[k], b1.v[k], (p + step) * kP + k);
    }
    for (; p < packs; p += step) {
      const Pack<T> a0 = load_pack(a, p), b0 = load_pack(b, p);
      LOOM_SIMT_UNROLL
      for (int k = 0; k < kP; ++k) f(a0.v[k], b0.v[k], p * kP + k);
    }
    for (int64_t j = packs * kP + thread_x(); j < n; j += step) f(a[j], b[j], j);
    return;
  }
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

// out[j] = f(in[j], j) over this thread's elements. With both rows on a
// 16-byte boundary (and out's values as wide as in's) each thread reads and
// writes whole packs, two in flight; otherwise elements t, t + threads, ...
// one load and one store each, so a warp's stores stay consecutive. (Scalar
// stores after packed loads would scatter each warp's stores over 16-byte
// strides: a quarter of the bandwidth.)
template <class T, class D, class F>
LOOM_SIMT_DEVICE void transform_row(const T* in, D* out, int64_t n, unsigned threads, F&& f) {
  const int64_t step = threads;
  if constexpr (sizeof(T) == sizeof(D)) {
    if (on_pack_boundary(in) && on_pack_boundary(out)) {
      constexpr int kP = kPack<T>;
      const int64_t packs = n / kP;
      int64_t p = thread_x();
      for (; p < packs; p += 2 * step) {
        const bool two = p + step < packs;
        const Pack<T> a = load_pack(in, p);
        Pack<T> b = a;
        if (two) b = load_pack(in, p + step);
        Pack<D> ra, rb;
        LOOM_SIMT_UNROLL
        for (int k = 0; k < kP; ++k) ra.v[k] = f(a.v[k], p * kP + k);
        store_pack(out, p, ra);
        if (!two) break;
        LOOM_SIMT_UNROLL
        for (int k = 0; k < kP; ++k) rb.v[k] = f(b.v[k], (p + step) * kP + k);
        store_pack(out, p + step, rb);
      }
      for (int64_t j = packs * kP + thread_x(); j < n; j += step) out[j] = f(in[j], j);
      return;
    }
  }
  for (int64_t j = thread_x(); j < n; j += step) out[j] = f(in[j], j);
}

// out[j] = f(a[j], b[j], j), as transform_row over two rows.
template <class T, class F>
LOOM_SIMT_DEVICE void transform_rows(const T* a, const T* b, T* out, int64_t n, unsigned threads, F&& f) {
  const int64_t step = threads;
  if (on_pack_boundary(a) && on_pack_boundary(b) && on_pack_boundary(out)) {
    constexpr int kP = kPack<T>;
    const int64_t packs = n / kP;
    for (int64_t p = thread_x(); p < packs; p += step) {
      const Pack<T> x = load_pack(a, p), y = load_pack(b, p);
      Pack<T> r;
      LOOM_SIMT_UNROLL
      for (int k = 0; k < kP; ++k) r.v[k] = f(x.v[k], y.v[k], p * kP + k);
      store_pack(out, p, r);
    }
    for (int64_t j = packs * kP + thread_x(); j < n; j += step) out[j] = f(a[j], b[j], j);
    return;
  }
  for (int64_t j = thread_x(); j < n; j += step) out[j] = f(a[j], b[j], j);
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
