// The tensor side of the softmax kernels (softmax.cuh), shared by the device
// entries (softmax.cu) and the host emulation: the checks, the kernel
// arguments and the launches. check(status, what) reports a failed launch.
#pragma once

#include <climits>
#include <type_traits>

#include "kernels/backend.hpp"
#include "loom/core/error.hpp"
#include "row_quads_args.hpp"
#include "softmax.cuh"

namespace loom::softmax_kernels {
inline namespace LOOM_SIMT_ABI {

inline void check_block(const Tensor& t, int64_t outer, int64_t r, int64_t inner, const char* op, const char* arg) {
  LOOM_CHECK(t.is_contiguous() && t.numel() == outer * r * inner, op, ": '", arg, "' ", shape_str(t.shape()),
             " is not a contiguous [", outer, ", ", r, ", ", inner, "] block");
}

inline unsigned column_blocks(int64_t columns) {
  const int64_t blocks = (columns + kColumnThreads - 1) / kColumnThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks < 65536 ? blocks : 65536);
}

template <bool Backward>
struct QuadRowsKernel {
  template <int Warps, int Quads>
  struct Pick {
    static auto get() {
      return Backward ? softmax_backward_quad_rows_kernel<Warps, Quads> : softmax_quad_rows_kernel<Warps, Quads>;
    }
  };
};

// Rows (inner == 1) held in registers when `fit` says they fit (f32), else one
// block each; otherwise columns, grid-stride.
template <class T, class Check>
void launch(Rows<T> a, bool backward, Stream stream, Check& check, RowFit fit) {
  const char* what = backward ? "softmax backward" : "softmax";
  if constexpr (std::is_same_v<T, float>) {
    if (a.inner == 1 && fit.warps) {
      const int64_t groups = kWarpRowWarps / fit.warps, blocks = (a.outer + groups - 1) / groups;
      LOOM_CHECK(blocks <= INT_MAX, what, ": ", a.outer, " rows, above the grid's ", INT_MAX);
      check(simt::launch(Dim3(static_cast<unsigned>(blocks)), Dim3(kWarpRowThreads), row_quads_shared_bytes(fit.warps),
                         stream,
                         backward ? by_fit<QuadRowsKernel<true>::template Pick>(fit)
                                  : by_fit<QuadRowsKernel<false>::template Pick>(fit),
                         a),
            what);
      return;
    }
  }
  if (a.inner == 1) {
    LOOM_CHECK(a.outer <= INT_MAX, what, ": ", a.outer, " rows, above the grid's ", INT_MAX);
    a.threads = row_threads(a.r);
    check(simt::launch(Dim3(static_cast<unsigned>(a.outer)), Dim3(a.threads), kBlockReduceSharedBytes, stream,
                       backward ? softmax_backward_rows_kernel<T> : softmax_rows_kernel<T>, a),
          what);
  } else {
    a.threads = column_blocks(a.outer * a.inner);
    check(simt::launch(Dim3(a.threads), Dim3(kColumnThreads), 0, stream,
                       backward ? softmax_backward_columns_kernel<T> : softmax_columns_kernel<T>, a),
          what);
  }
}

template <class Check>
void run_forward(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log,
                 Stream stream, Check&& check) {
  check_block(x, outer, r, inner, "softmax", "x");
  check_block(out, outer, r, inner, "softmax", "out");
  LOOM_CHECK(out.dtype() == x.dtype(), "softmax: dtype mismatch");
  LOOM_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, "softmax: expected a f32 or f64 tensor, got ",
             dtype_name(x.dtype()));
  if (outer * r * inner == 0) return;
  if (x.dtype() == DType::f32)
    launch(Rows<float>{static_cast<const float*>(x.raw_data()), nullptr, static_cast<float*>(out.raw_data()), outer,
                       r, inner, log, 0},
           false, stream, check, row_quads_fit(x.dtype(), r, {&x, &out}));
  else
    launch(Rows<double>{static_cast<const double*>(x.raw_data()), nullptr, static_cast<double*>(out.raw_data()),
                        outer, r, inner, log, 0},
           false, stream, check, RowFit{});
}

template <class Check>
void run_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                  int64_t inner, bool log, Stream stream, Check&& check) {
  check_block(grad, outer, r, inner, "softmax backward", "grad");
  check_block(y, outer, r, inner, "softmax backward", "y");
  check_block(grad_in, outer, r, inner, "softmax backward", "grad_in");
  LOOM_CHECK(grad.dtype() == y.dtype() && grad_in.dtype() == y.dtype(), "softmax backward: dtype mismatch");
  LOOM_CHECK(y.dtype() == DType::f32 || y.dtype() == DType::f64,
             "softmax backward: expected a f32 or f64 tensor, got ", dtype_name(y.dtype()));
  if (outer * r * inner == 0) return;
  if (y.dtype() == DType::f32)
    launch(Rows<float>{static_cast<const float*>(grad.raw_data()), static_cast<const float*>(y.raw_data()),
                       static_cast<float*>(grad_in.raw_data()), outer, r, inner, log, 0},
           true, stream, check, row_quads_fit(y.dtype(), r, {&grad, &y, &grad_in}));
  else
    launch(Rows<double>{static_cast<const double*>(grad.raw_data()), static_cast<const double*>(y.raw_data()),
                        static_cast<double*>(grad_in.raw_data()), outer, r, inner, log, 0},
           true, stream, check, RowFit{});
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::softmax_kernels
