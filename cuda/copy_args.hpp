// The tensor side of the copy kernels (copy_kernels.cuh), shared by the
// device entries (copy.cu) and the emulator's tests: which kernel a call
// takes, its Indexer and the launch. The device side keeps what only a
// device has (cudaMemcpy for dense same-dtype copies, cudaMemset for zero
// fills, copies across devices and the host). check(status, what) reports a
// failed launch.
#pragma once

#include <cstring>

#include "copy_kernels.cuh"
#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"

namespace loom::copy_kernels {
inline namespace LOOM_SIMT_ABI {

// dst = src on one device, any strides: raw bits when the dtypes match,
// converted otherwise.
template <class Check>
void run_copy(const Tensor& src, const Tensor& dst, Stream stream, Check&& check) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto ix = make_indexer<2>(dst.shape(), {dst.strides(), src.strides()}, "copy");
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
