// The tensor side of the indexing kernels (index_kernels.cuh), shared by the
// device entries (index.cu, which adds the deterministic index_add) and the
// emulator's tests: argument checks, the Indexers and the launches.
// check(status, what) reports a failed launch.
#pragma once

#include <string>

#include "index_kernels.cuh"
#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"

namespace loom::index_kernels {
inline namespace LOOM_SIMT_ABI {

inline void check_index(const Tensor& index, const char* op) {
  LOOM_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op, ": index must be i64 or i32, got ",
             dtype_name(index.dtype()));
}

inline Index index_of(const Tensor& index) {
  return {index.raw_data(), index.dtype() == DType::i64, index.dim() == 0 ? 0 : index.stride(0)};
}

template <class Check>
void run_index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, Stream stream,
                      Check&& check) {
  check_index(index, "index_select");
  LOOM_CHECK(x.dtype() == out.dtype() && dim >= 0 && dim < x.dim() && out.dim() == x.dim(),
             "index_select: bad arguments");
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto ix = make_indexer<3>(
      out.shape(), {out.strides(), without_dim(x.strides(), dim), unit_at(out.shape().size(), dim)}, "index_select");
  with_bits_of(itemsize(x.dtype()), [&]<class B>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, index_select_kernel<B>, n, ix,
                 static_cast<const B*>(x.raw_data()), x.stride(dim), index_of(index), static_cast<B*>(out.raw_data())),
          "index_select");
  });
}

inline void check_index_add(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x) {
  check_index(index, "index_add");
  LOOM_CHECK(grad_out.dtype() == grad_x.dtype() && dim >= 0 && dim < grad_x.dim() && grad_out.dim() == grad_x.dim(),
             "index_add: bad arguments");
  // Checked here too (not only in the launch): index.cu's sorting path needs it.
  LOOM_CHECK(grad_x.dtype() == DType::f32 || grad_x.dtype() == DType::f64,
             "index_add: expected a f32 or f64 tensor, got ", dtype_name(grad_x.dtype()));
}

// With atomics (the order of the additions into a row varies).
template <class Check>
void run_index_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx, Stream stream,
                   Check&& check) {
  check_index_add(g, dim, index, gx);
  const int64_t n = g.numel();
  if (n == 0) return;
  const auto ix = make_indexer<3>(
      g.shape(), {g.strides(), without_dim(gx.strides(), dim), unit_at(g.shape().size(), dim)}, "index_add");
  with_f32_or_f64(gx.dtype(), "index_add", [&]<class T>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, index_add_kernel<T>, n, ix,
                 static_cast<const T*>(g.raw_data()), gx.stride(dim), index_of(index), static_cast<T*>(gx.raw_data())),
          "index_add");
  });
}

template <class Check>
void run_gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, Stream stream, Check&& check) {
  check_index(index, "gather");
  LOOM_CHECK(x.dtype() == out.dtype() && out.shape() == index.shape() && dim >= 0 && dim < x.dim(),
             "gather: bad arguments");
  const int64_t n = index.numel();
  if (n == 0) return;
  const auto ix = make_indexer<3>(index.shape(), {out.strides(), index.strides(), without_dim(x.strides(), dim)},
                                  "gather");
  with_bits_of(itemsize(x.dtype()), [&]<class B>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, gather_kernel<B>, n, ix,
                 static_cast<const B*>(x.raw_data()), x.stride(dim), index_of(index), static_cast<B*>(out.raw_data())),
          "gather");
  });
}

template <class Check>
void run_scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add, Stream stream,
                 Check&& check) {
  check_index(index, "scatter");
  LOOM_CHECK(src.dtype() == out.dtype() && dim >= 0 && dim < out.dim(), "scatter: bad arguments");
  const int64_t n = index.numel();
  if (n == 0) return;
  const auto ix = make_indexer<3>(index.shape(), {src.strides(), index.strides(), without_dim(out.strides(), dim)},
                                  "scatter");
  auto go = [&]<class T, bool Add>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, scatter_kernel<T, Add>, n, ix,
                 static_cast<const T*>(src.raw_data()), index_of(index), static_cast<T*>(out.raw_data()),
                 out.stride(dim)),
          add ? "scatter_add" : "scatter");
  };
  if (!add) return with_bits_of(itemsize(out.dtype()), [&]<class B>() { go.template operator()<B, false>(); });
  switch (out.dtype()) {
    case DType::f32: return go.template operator()<float, true>();
    case DType::f64: return go.template operator()<double, true>();
    case DType::i32: return go.template operator()<int32_t, true>();
    case DType::i64: return go.template operator()<int64_t, true>();
    default: fail_no_kernel("scatter_add", std::string("dtype ") + dtype_name(out.dtype()));
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::index_kernels
