// copy (strided, dtype-converting), fill and where on one device.
// Floor: no FLOPs; copy moves numel * (itemsize(src) + itemsize(dst)) bytes,
// fill numel * itemsize, where numel * (1 + 3 * itemsize). One thread per
// output element, grid-stride, offsets from the Indexer (elements.cuh).
// Same-dtype copies and fill/where move raw bits (1, 2, 4 or 8 bytes), and a
// transpose may move them in tiles (copy_transpose_tiles_kernel);
// converting copies go through double exactly as the CPU's convert does.
// Written on simt.cuh, so the emulator runs it (tests/cuda/copy_emulated_test.cpp).
#pragma once

#include "elements.cuh"
#include "loom/core/dtype.hpp"

namespace loom::copy_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::strided;

template <class B>
LOOM_SIMT_GLOBAL void copy_bits_kernel(int64_t n, Indexer<2> ix, const B* src, B* dst) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Copies whose two sides both step one element along the innermost merged
// dim (a permute that keeps the last dim, a slice, a concatenation's part,
// a dense cast) are rows of one run each. The run kernels move a run as
// vectors of up to 16 bytes and index the rows once per vector, not once
// per element: the general kernels' 64-bit divisions per element made a
// bf16 head permute run at a tenth of the copy rate.
struct alignas(16) Bits128 {
  unsigned long long lo, hi;
};

template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// Raw bits: `units` W-wide vectors per row; rows' offsets in vectors.
template <class W>
LOOM_SIMT_GLOBAL void copy_runs_kernel(int64_t n, int64_t units, Indexer<2> rows, const W* src, W* dst) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    const int64_t row = i / units, u = i - row * units;
    int64_t off[2];
    rows.offsets(row, off);
    dst[off[0] + u] = src[off[1] + u];
  }
}

// Between floating types (f32, bf16, f16) through float, which is what the
// general kernel's path through double gives for these types, bit for bit.
template <class S, class D, int V>
LOOM_SIMT_GLOBAL void convert_runs_kernel(int64_t n, int64_t units, Indexer<2> rows, const Vec<S, V>* src,
                                          Vec<D, V>* dst) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    const int64_t row = i / units, u = i - row * units;
    int64_t off[2];
    rows.offsets(row, off);
    const Vec<S, V> in = src[off[1] + u];
    Vec<D, V> out;
    for (int k = 0; k < V; ++k) out.v[k] = from_compute<D>(static_cast<float>(to_compute(in.v[k])));
    dst[off[0] + u] = out;
  }
}

// A transpose (the kernel variant copy_transpose_tiles): the destination's
// unit-stride dim a is not the source's, b. The general kernel's threads
// write along a and read across it, one sector of each 32-byte line they
// load. Here a block moves 32 x 32 tiles through shared memory: its threads
// read a tile along b (the source's unit stride) and write it along a (the
// destination's), both coalesced; the tile's rows are padded to 33 so that
// the write phase, reading a column, hits 32 banks. Each tile is one
// position of the other dims (outer).
inline constexpr int kTransposeTile = 32;
inline constexpr unsigned kTransposeThreads = 256;  // 8 rows of 32 lanes
struct TransposeTiles {
  int64_t na, nb;          // the sizes of dims a and b
  int64_t src_a, dst_b;    // the strides that are not 1: the source's along a, the destination's along b
  int64_t tiles_a, tiles_b, outer;
  Indexer<2> outer_ix;     // offsets of the other dims' positions (destination, source)
};

template <class B>
inline size_t transpose_tiles_shared_bytes() {
  return static_cast<size_t>(kTransposeTile) * (kTransposeTile + 1) * sizeof(B);
}

template <class B>
LOOM_SIMT_GLOBAL void copy_transpose_tiles_kernel(TransposeTiles t, const B* src, B* dst) {
  constexpr int kT = kTransposeTile, kRows = static_cast<int>(kTransposeThreads) / kT;
  B* tile = dynamic_shared<B>();  // [kT][kT + 1]: tile[i * (kT + 1) + j] is (a0 + i, b0 + j)
  const int lane = static_cast<int>(thread_x() % kT), first_row = static_cast<int>(thread_x() / kT);
  const int64_t per_outer = t.tiles_a * t.tiles_b, tiles = per_outer * t.outer;
  // The same bounds for the whole block: every thread reaches both barriers.
  for (int64_t id = block_x(); id < tiles; id += grid_dim_x()) {
    const int64_t o = id / per_outer, in_outer = id - o * per_outer;
    const int64_t b0 = (in_outer / t.tiles_a) * kT, a0 = (in_outer % t.tiles_a) * kT;
    int64_t off[2];
    t.outer_ix.offsets(o, off);
    for (int i = first_row; i < kT; i += kRows) {  // read: lanes along b
      const int64_t a = a0 + i, b = b0 + lane;
      if (a < t.na && b < t.nb) tile[i * (kT + 1) + lane] = src[off[1] + a * t.src_a + b];
    }
    sync_block();
    for (int j = first_row; j < kT; j += kRows) {  // write: lanes along a
      const int64_t a = a0 + lane, b = b0 + j;
      if (a < t.na && b < t.nb) dst[off[0] + b * t.dst_b + a] = tile[lane * (kT + 1) + j];
    }
    sync_block();  // the next tile overwrites this one
  }
}

// A value read from any dtype: integers (bool, u8 included) exactly as
// int64, floating types as double (halves through float).
struct Value {
  double f;
  int64_t i;
  bool integral;
};

LOOM_SIMT_DEVICE Value load_value(const void* base, int dtype, int64_t off) {
  Value v{0.0, 0, false};
  switch (static_cast<DType>(dtype)) {
    case DType::f32: v.f = static_cast<const float*>(base)[off]; break;
    case DType::f64: v.f = static_cast<const double*>(base)[off]; break;
    case DType::bf16: v.f = bf16_to_float(static_cast<const uint16_t*>(base)[off]); break;
    case DType::f16: v.f = half_to_float(static_cast<const uint16_t*>(base)[off]); break;
    case DType::i32: v.i = static_cast<const int32_t*>(base)[off]; v.integral = true; break;
    case DType::i64: v.i = static_cast<const int64_t*>(base)[off]; v.integral = true; break;
    case DType::u8: v.i = static_cast<const uint8_t*>(base)[off]; v.integral = true; break;
    case DType::boolean: v.i = static_cast<const uint8_t*>(base)[off] != 0; v.integral = true; break;
  }
  return v;
}

// As the CPU's convert<U>(T): integer to integer by static_cast, anything to
// bool by "!= 0", everything else through double (halves then through float).
LOOM_SIMT_DEVICE void store_value(void* base, int dtype, int64_t off, const Value& v) {
  const double d = v.integral ? static_cast<double>(v.i) : v.f;
  switch (static_cast<DType>(dtype)) {
    case DType::f32: static_cast<float*>(base)[off] = static_cast<float>(d); break;
    case DType::f64: static_cast<double*>(base)[off] = d; break;
    case DType::bf16: static_cast<uint16_t*>(base)[off] = float_to_bf16(static_cast<float>(d)); break;
    case DType::f16: static_cast<uint16_t*>(base)[off] = float_to_half(static_cast<float>(d)); break;
    case DType::i32:
      static_cast<int32_t*>(base)[off] = v.integral ? static_cast<int32_t>(v.i) : static_cast<int32_t>(d);
      break;
    case DType::i64:
      static_cast<int64_t*>(base)[off] = v.integral ? v.i : static_cast<int64_t>(d);
      break;
    case DType::u8:
      static_cast<uint8_t*>(base)[off] = v.integral ? static_cast<uint8_t>(v.i) : static_cast<uint8_t>(d);
      break;
    case DType::boolean: static_cast<uint8_t*>(base)[off] = v.integral ? v.i != 0 : d != 0.0; break;
  }
}

LOOM_SIMT_GLOBAL void convert_kernel(int64_t n, Indexer<2> ix, const void* src, int src_dtype, void* dst,
                                     int dst_dtype) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    store_value(dst, dst_dtype, off[0], load_value(src, src_dtype, off[1]));
  }
}

template <class B>
LOOM_SIMT_GLOBAL void fill_kernel(int64_t n, Indexer<1> ix, B* dst, B value) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    dst[off[0]] = value;
  }
}

template <class B>
LOOM_SIMT_GLOBAL void where_kernel(int64_t n, Indexer<4> ix, const bool* cond, const B* a, const B* b, B* out) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    int64_t off[4];
    ix.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::copy_kernels
