// sum / max / argmax over the middle axis of a contiguous [outer, r, inner].
// Floor: reads numel * itemsize bytes once, writes outer * inner outputs;
// numel adds or compares. Memory-bound.
//
// A block of 256 threads owns one outer index, a tile of up to 32 inner
// columns and a span of r: its threads split the span (the block's "rows")
// and combine through shared memory in a fixed tree. When there are few
// tiles and r is long (a whole-tensor sum: one tile), r is cut into spans
// for many blocks, each writing a partial, and a second kernel (a thread per
// output for a few spans, a block per output for many) combines each
// output's partials in a fixed order: every SM works, and the result is
// still deterministic. Sums accumulate in double, as on the CPU.
// max/argmax keep the first maximal index; NaN counts as the maximum (the
// first NaN wins), as on the CPU. Written on simt.cuh, so the emulator runs
// it (tests/cuda/reduce_emulated_test.cpp).
#pragma once

#include "packs.cuh"
#include "simt.cuh"

namespace loom::reduce_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr unsigned kThreads = 256;
inline constexpr size_t kSharedBytes = kThreads * (sizeof(double) + sizeof(double) + sizeof(int64_t));

enum Op : int { kSum = 0, kMax = 1, kArgmax = 2 };

template <class T>
struct Best {
  T v;
  int64_t k;  // -1: no element seen
};

// Is (v, k) better than b? Lower index breaks ties; NaN beats everything.
template <class T>
LOOM_SIMT_DEVICE bool better(T v, int64_t k, const Best<T>& b) {
  if (k < 0) return false;
  if (b.k < 0) return true;
  const bool vn = v != v, bn = b.v != b.v;
  if (vn || bn) return vn && (!bn || k < b.k);
  if (v != b.v) return v > b.v;
  return k < b.k;
}

template <class T>
struct Reduction {
  const T* x;
  int64_t outer, r, inner;
  int columns;              // inner columns per block (a power of two, at most 32)
  int64_t tiles_per_outer;  // ceil(inner / columns)
  int64_t spans;            // pieces r is cut into (1: no second pass)
  int64_t span;             // rows per piece
  unsigned blocks;          // the grid (grid-stride over tiles x spans)
  T* out;                   // sum, max
  int64_t* out_index;       // argmax
  double* partial_sum;      // [outer * inner, spans] when spans > 1
  T* partial_value;
  int64_t* partial_index;
};

// The block's shared slots (kSharedBytes): a double sum, or a value and its
// index, per thread.
template <class T>
struct Slots {
  double* sums;
  T* vals;
  int64_t* idxs;
};

template <class T>
LOOM_SIMT_DEVICE Slots<T> shared_slots() {
  double* sums = dynamic_shared<double>();
  T* vals = reinterpret_cast<T*>(sums + kThreads);
  return {sums, vals, reinterpret_cast<int64_t*>(reinterpret_cast<double*>(vals) + kThreads)};
}

// Folds each column's `rows` slots (slot = ty * columns + tx) into its row 0
// in a fixed tree. Every thread of the block calls it (it synchronises).
template <class T, int Kind>
LOOM_SIMT_DEVICE void fold_slots(const Slots<T>& s, int slot, int ty, int rows, int columns) {
  for (int half = rows / 2; half > 0; half /= 2) {
    if (ty < half) {
      const int other = slot + half * columns;
      if (Kind == kSum) {
        s.sums[slot] += s.sums[other];
      } else if (better(s.vals[other], s.idxs[other], Best<T>{s.vals[slot], s.idxs[slot]})) {
        s.vals[slot] = s.vals[other];
        s.idxs[slot] = s.idxs[other];
      }
    }
    sync_block();
  }
}

// Output o's result: the sum, the maximum or its index, as Kind asks.
template <class T, int Kind>
LOOM_SIMT_DEVICE void store_output(const Reduction<T>& a, int64_t o, double sum, T value, int64_t index) {
  if (Kind == kSum) a.out[o] = static_cast<T>(sum);
  else if (Kind == kMax) a.out[o] = value;
  else a.out_index[o] = index;
}

// The same from a slot (reading only what Kind keeps there).
template <class T, int Kind>
LOOM_SIMT_DEVICE void store_slot(const Reduction<T>& a, int64_t o, const Slots<T>& s, int slot) {
  if (Kind == kSum) store_output<T, Kind>(a, o, s.sums[slot], T(0), -1);
  else store_output<T, Kind>(a, o, 0.0, s.vals[slot], s.idxs[slot]);
}

template <class T, int Kind>
LOOM_SIMT_GLOBAL void reduce_kernel(Reduction<T> a) {
  const Slots<T> sh = shared_slots<T>();
  const int rows = static_cast<int>(kThreads) / a.columns;
  const int slot = static_cast<int>(thread_x()), tx = slot % a.columns, ty = slot / a.columns;
  const int64_t work = a.outer * a.tiles_per_outer * a.spans;
  for (int64_t w = block_x(); w < work; w += a.blocks) {
    const int64_t tile = w / a.spans, piece = w - tile * a.spans;
    const int64_t outer = tile / a.tiles_per_outer;
    const int64_t c = (tile - outer * a.tiles_per_outer) * a.columns + tx;
    const bool active = c < a.inner;
    const int64_t begin = piece * a.span, end = begin + a.span < a.r ? begin + a.span : a.r;
    const T* p = a.x + outer * a.r * a.inner + c;
    if (Kind == kSum) {
      // Four independent loads in flight per thread (one at a time left the
      // memory system mostly idle); their sums combine in a fixed order. A
      // contiguous span on a 16-byte boundary is read in 16-byte packs: a
      // whole-tensor sum of scalar loads ran at 0.64 of the copy rate.
      double acc[4] = {0, 0, 0, 0};
      if (active && a.inner == 1 && on_pack_boundary(p + begin)) {
        constexpr int kP = kPack<T>;
        const T* q = p + begin;
        const int64_t packs = (end - begin) / kP;
        for_each_pack(q, packs, ty, rows, [&](const Pack<T>& v, int64_t, int slot) {
          LOOM_SIMT_UNROLL
          for (int e = 0; e < kP; ++e) acc[slot] += static_cast<double>(v.v[e]);
        });
        for (int64_t k = packs * kP + ty; k < end - begin; k += rows) acc[0] += static_cast<double>(q[k]);
      } else if (active) {
        int64_t k = begin + ty;
        for (; k + 3 * rows < end; k += 4 * rows)
          for (int u = 0; u < 4; ++u) acc[u] += static_cast<double>(p[(k + u * rows) * a.inner]);
        for (; k < end; k += rows) acc[0] += static_cast<double>(p[k * a.inner]);
      }
      sh.sums[slot] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    } else {
      Best<T> best{T(0), -1};
      if (active)
        for (int64_t k = begin + ty; k < end; k += rows) {
          const T v = p[k * a.inner];
          if (better(v, k, best)) best = Best<T>{v, k};
        }
      sh.vals[slot] = best.v;
      sh.idxs[slot] = best.k;
    }
    sync_block();
    fold_slots<T, Kind>(sh, slot, ty, rows, a.columns);
    if (ty == 0 && active) {
      const int64_t o = outer * a.inner + c;
      if (a.spans > 1) {
        const int64_t at = o * a.spans + piece;
        if (Kind == kSum) {
          a.partial_sum[at] = sh.sums[tx];
        } else {
          a.partial_value[at] = sh.vals[tx];
          a.partial_index[at] = sh.idxs[tx];
        }
      } else {
        store_slot<T, Kind>(a, o, sh, tx);
      }
    }
    sync_block();  // the shared arrays are reused by the next tile
  }
}

// A thread per output: its spans' partials, in span order. For few spans
// per output (many outputs).
template <class T, int Kind>
LOOM_SIMT_GLOBAL void combine_spans_kernel(Reduction<T> a) {
  const int64_t outputs = a.outer * a.inner;
  for (int64_t o = static_cast<int64_t>(block_x()) * kThreads + thread_x(); o < outputs;
       o += static_cast<int64_t>(a.blocks) * kThreads) {
    if (Kind == kSum) {
      double acc = 0;
      for (int64_t s = 0; s < a.spans; ++s) acc += a.partial_sum[o * a.spans + s];
      store_output<T, Kind>(a, o, acc, T(0), -1);
    } else {
      Best<T> best{T(0), -1};
      for (int64_t s = 0; s < a.spans; ++s) {
        const int64_t at = o * a.spans + s;
        if (better(a.partial_value[at], a.partial_index[at], best))
          best = Best<T>{a.partial_value[at], a.partial_index[at]};
      }
      store_output<T, Kind>(a, o, 0.0, best.v, best.k);
    }
  }
}

// A block per output, for many spans per output: thread t takes the
// output's partials t, t + 256, ... in span order, then the block folds them
// in reduce_kernel's fixed tree (fold_slots). (A thread per output walked a
// whole-tensor sum's 2048 partials one dependent load after another, as long
// as the pass over the data.)
template <class T, int Kind>
LOOM_SIMT_GLOBAL void combine_spans_block_kernel(Reduction<T> a) {
  const Slots<T> sh = shared_slots<T>();
  const int t = static_cast<int>(thread_x());
  const int64_t outputs = a.outer * a.inner;
  for (int64_t o = block_x(); o < outputs; o += a.blocks) {
    if (Kind == kSum) {
      double acc = 0;
      for (int64_t s = t; s < a.spans; s += kThreads) acc += a.partial_sum[o * a.spans + s];
      sh.sums[t] = acc;
    } else {
      Best<T> best{T(0), -1};
      for (int64_t s = t; s < a.spans; s += kThreads) {
        const int64_t at = o * a.spans + s;
        if (better(a.partial_value[at], a.partial_index[at], best))
          best = Best<T>{a.partial_value[at], a.partial_index[at]};
      }
      sh.vals[t] = best.v;
      sh.idxs[t] = best.k;
    }
    sync_block();
    fold_slots<T, Kind>(sh, t, t, static_cast<int>(kThreads), 1);
    if (t == 0) store_slot<T, Kind>(a, o, sh, 0);
    sync_block();  // the shared arrays are reused by the next output
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::reduce_kernels
