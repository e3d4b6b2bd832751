// The tensor side of the copy kernels (copy_kernels.cuh), shared by the
// device entries (copy.cu) and the emulator's tests: which kernel a call
// takes, its Indexer and the launch. The device side keeps what only a
// device has (cudaMemcpy for dense same-dtype copies, cudaMemset for zero
// fills, copies across devices and the host). check(status, what) reports a
// failed launch.
#pragma once

#include <cstdint>
#include <cstring>

#include "copy_kernels.cuh"
#include "kernels/transpose_dims.hpp"
#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"

namespace loom::copy_kernels {
inline namespace LOOM_SIMT_ABI {

// A copy as rows of one run each (copy_kernels.cuh), when both sides step one
// element along the innermost merged dim: `run` elements per row, and the
// rows' Indexer over the outer dims (element strides; none for one row).
struct Runs {
  int64_t run = 0;
  Indexer<2> rows;
};

inline bool as_runs(const Indexer<2>& ix, int64_t n, Runs& r) {
  r = Runs{};
  r.rows.contiguous = false;  // offsets of row 0 are 0 with no dims
  if (ix.contiguous) {
    r.run = n;
    return true;
  }
  if (ix.ndim < 1 || ix.strides[0][0] != 1 || ix.strides[0][1] != 1) return false;
  r.run = ix.sizes[0];
  r.rows.ndim = ix.ndim - 1;
  for (int d = 1; d < ix.ndim; ++d) {
    r.rows.sizes[d - 1] = ix.sizes[d];
    for (int k = 0; k < 2; ++k) r.rows.strides[d - 1][k] = ix.strides[d][k];
  }
  return true;
}

// The most elements per vector (a power of two up to `most`) that divide the
// run and every row stride, with both base addresses aligned to the vector.
inline int64_t run_vector(const Runs& r, size_t dst_item, size_t src_item, const void* dst, const void* src,
                          int64_t most) {
  for (int64_t v = most; v > 1; v /= 2) {
    bool ok = r.run % v == 0 && reinterpret_cast<uintptr_t>(dst) % (v * dst_item) == 0 &&
              reinterpret_cast<uintptr_t>(src) % (v * src_item) == 0;
    for (int d = 0; d < r.rows.ndim; ++d) ok = ok && r.rows.strides[d][0] % v == 0 && r.rows.strides[d][1] % v == 0;
    if (ok) return v;
  }
  return 1;
}

// The rows' Indexer in vectors of v elements.
inline Indexer<2> rows_in_vectors(const Runs& r, int64_t v) {
  Indexer<2> rows = r.rows;
  for (int d = 0; d < rows.ndim; ++d)
    for (int k = 0; k < 2; ++k) rows.strides[d][k] /= v;
  return rows;
}

// Calls f.template operator()<T>() with T float, Bf16 or Half for f32, bf16
// or f16; false for any other dtype.
template <class F>
bool with_float_storage(DType t, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); return true;
    case DType::bf16: f.template operator()<Bf16>(); return true;
    case DType::f16: f.template operator()<Half>(); return true;
    default: return false;
  }
}

// Same-dtype run copies in vectors of 4 to 16 bytes; false when the layout
// allows none (the general kernel takes the copy).
template <class Check>
bool copy_runs(const Tensor& src, const Tensor& dst, const Runs& r, Stream stream, Check& check) {
  const size_t item = itemsize(dst.dtype());
  const int64_t v = run_vector(r, item, item, dst.raw_data(), src.raw_data(), static_cast<int64_t>(16 / item));
  const size_t width = static_cast<size_t>(v) * item;
  if (width < 4) return false;
  const int64_t units = r.run / v, n = dst.numel() / v;
  const Indexer<2> rows = rows_in_vectors(r, v);
  auto go = [&]<class W>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, copy_runs_kernel<W>, n, units, rows,
                 static_cast<const W*>(src.raw_data()), static_cast<W*>(dst.raw_data())),
          "copy");
  };
  if (width == 16)
    go.template operator()<Bits128>();
  else if (width == 8)
    go.template operator()<unsigned long long>();
  else
    go.template operator()<uint32_t>();
  return true;
}

// Converting run copies between f32, bf16 and f16, four elements per thread;
// false when the dtypes or the layout do not allow it.
template <class Check>
bool convert_runs(const Tensor& src, const Tensor& dst, const Runs& r, Stream stream, Check& check) {
  constexpr int kV = 4;
  if (run_vector(r, itemsize(dst.dtype()), itemsize(src.dtype()), dst.raw_data(), src.raw_data(), kV) != kV)
    return false;
  const int64_t units = r.run / kV, n = dst.numel() / kV;
  const Indexer<2> rows = rows_in_vectors(r, kV);
  bool launched = false;
  with_float_storage(src.dtype(), [&]<class S>() {
    with_float_storage(dst.dtype(), [&]<class D>() {
      check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, convert_runs_kernel<S, D, kV>, n, units, rows,
                   static_cast<const Vec<S, kV>*>(src.raw_data()), static_cast<Vec<D, kV>*>(dst.raw_data())),
            "copy (converting)");
      launched = true;
    });
  });
  return launched;
}

// The transpose a same-dtype copy is, if it is one (copy_transpose_tiles_kernel):
// dst has unit stride along a dim a, src along another dim b, both at least
// kMinTransposeDim long, and dst repeats no element. False otherwise.
inline constexpr int64_t kMinTransposeDim = 16;
inline bool as_transpose(const Tensor& src, const Tensor& dst, TransposeTiles& t) {
  const Shape& shape = dst.shape();
  const auto dims = kernels::transpose_dims(shape, dst.strides(), src.strides(), kMinTransposeDim);
  if (!dims) return false;
  const auto [a, b] = *dims;
  Shape outer = shape;
  outer[a] = outer[b] = 1;
  t.na = shape[a];
  t.nb = shape[b];
  t.src_a = src.strides()[a];
  t.dst_b = dst.strides()[b];
  t.tiles_a = (t.na + kTransposeTile - 1) / kTransposeTile;
  t.tiles_b = (t.nb + kTransposeTile - 1) / kTransposeTile;
  t.outer = numel(outer);
  t.outer_ix = make_indexer<2>(outer, {dst.strides(), src.strides()}, "copy");
  t.outer_ix.contiguous = false;  // offsets of the outer positions, not of elements
  return true;
}

// dst = src on one device, any strides: raw bits when the dtypes match,
// converted otherwise. transpose_tiles: the kernel variant copy_transpose_tiles.
template <class Check>
void run_copy(const Tensor& src, const Tensor& dst, Stream stream, Check&& check, bool transpose_tiles = false) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (TransposeTiles t; transpose_tiles && src.dtype() == dst.dtype() && as_transpose(src, dst, t)) {
    with_bits_of(itemsize(dst.dtype()), [&]<class B>() {
      const int64_t tiles = t.tiles_a * t.tiles_b * t.outer;
      check(launch(Dim3(static_cast<unsigned>(tiles < 65536 ? tiles : 65536)), Dim3(kTransposeThreads),
                   transpose_tiles_shared_bytes<B>(), stream, copy_transpose_tiles_kernel<B>, t,
                   static_cast<const B*>(src.raw_data()), static_cast<B*>(dst.raw_data())),
            "copy (transpose tiles)");
    });
    return;
  }
  const auto ix = make_indexer<2>(dst.shape(), {dst.strides(), src.strides()}, "copy");
  Runs runs;
  if (as_runs(ix, n, runs)) {
    if (src.dtype() == dst.dtype() ? copy_runs(src, dst, runs, stream, check)
                                   : convert_runs(src, dst, runs, stream, check))
      return;
  }
  if (src.dtype() == dst.dtype()) {
    with_bits_of(itemsize(dst.dtype()), [&]<class B>() {
      check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, copy_bits_kernel<B>, n, ix,
                   static_cast<const B*>(src.raw_data()), static_cast<B*>(dst.raw_data())),
            "copy");
    });
    return;
  }
  check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, convert_kernel, n, ix, src.raw_data(),
               static_cast<int>(src.dtype()), dst.raw_data(), static_cast<int>(dst.dtype())),
        "copy (converting)");
}

// Every element of dst = the value whose bits (in dst's dtype) are `bits`.
template <class Check>
void run_fill(const Tensor& dst, const unsigned char (&bits)[8], Stream stream, Check&& check) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto ix = make_indexer<1>(dst.shape(), {dst.strides()}, "fill");
  with_bits_of(itemsize(dst.dtype()), [&]<class B>() {
    B v;
    std::memcpy(&v, bits, sizeof(B));
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, fill_kernel<B>, n, ix, static_cast<B*>(dst.raw_data()),
                 v),
          "fill");
  });
}

// out = cond ? a : b, all already broadcast to out's shape.
template <class Check>
void run_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream, Check&& check) {
  LOOM_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", dtype_name(cond.dtype()));
  LOOM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where: dtypes ", dtype_name(a.dtype()), ", ",
             dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto ix = make_indexer<4>(out.shape(), {out.strides(), cond.strides(), a.strides(), b.strides()}, "where");
  with_bits_of(itemsize(out.dtype()), [&]<class B>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, where_kernel<B>, n, ix,
                 static_cast<const bool*>(cond.raw_data()), static_cast<const B*>(a.raw_data()),
                 static_cast<const B*>(b.raw_data()), static_cast<B*>(out.raw_data())),
          "where");
  });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::copy_kernels
