// The tensor side of the norm kernels (norm.cuh), shared by the device entries
// (norm.cu) and the host emulation (emulated_tiles.cpp): the shape checks, the
// kernel arguments and the launches. `stream` is the device's stream (or the
// emulator's); check(status, what) reports a failed launch.
#pragma once

#include <climits>

#include "kernels/backend.hpp"
#include "loom/ops/creation.hpp"
#include "loom/core/error.hpp"
#include "norm.cuh"

namespace loom::norm_kernels {
inline namespace LOOM_SIMT_ABI {

inline const char* op_name(const kernels::NormShape& s, bool backward) {
  if (backward) return s.rms ? "rms_norm backward" : "layer_norm backward";
  return s.rms ? "rms_norm" : "layer_norm";
}

inline void check_numel(const Tensor& t, int64_t numel, const char* op, const char* arg) {
  if (!t.defined()) return;
  LOOM_CHECK(t.is_contiguous() && t.numel() == numel, op, ": '", arg, "' ", shape_str(t.shape()),
             " is not contiguous with ", numel, " elements");
}

inline void check_float(const Tensor& x, const char* op) {
  LOOM_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, op, ": expected a f32 or f64 tensor, got ",
             dtype_name(x.dtype()));
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <class T>
T* mutable_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

template <class T, class Check>
void launch_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                    const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                    const kernels::NormShape& s, Stream stream, Check& check) {
  const unsigned threads = row_threads(s.cols);
  const Forward<T> a{data_or_null<T>(x),      data_or_null<T>(residual), data_or_null<T>(weight),
                     data_or_null<T>(bias),   mutable_or_null<T>(out),   mutable_or_null<T>(sum),
                     mutable_or_null<T>(mean), mutable_or_null<T>(rstd), s.cols,
                     s.eps,                   s.rms,                     threads};
  check(launch(Dim3(static_cast<unsigned>(s.rows)), Dim3(threads), simt::kBlockReduceSharedBytes, stream,
               norm_rows_kernel<T>, a),
        op_name(s, false));
}

template <class T, class Check>
void launch_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                     const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_w,
                     const Tensor& grad_b, const kernels::NormShape& s, Stream stream, Check& check) {
  if (grad_x.defined() && s.rows > 0) {
    const unsigned threads = row_threads(s.cols);
    const Backward<T> a{data_or_null<T>(grad),   data_or_null<T>(grad_sum), data_or_null<T>(x),
                        data_or_null<T>(weight), data_or_null<T>(mean),     data_or_null<T>(rstd),
                        mutable_or_null<T>(grad_x), s.cols,                 s.rms,
                        threads};
    check(launch(Dim3(static_cast<unsigned>(s.rows)), Dim3(threads), simt::kBlockReduceSharedBytes, stream,
                 norm_rows_backward_kernel<T>, a),
          op_name(s, true));
  }
  if (grad_w.defined() || grad_b.defined()) {  // over no rows too: the sums are then 0
    const int64_t chunk_rows = weight_grad_chunk_rows(s.rows, s.cols);
    const int64_t chunks = s.rows > 0 ? (s.rows + chunk_rows - 1) / chunk_rows : 1;
    Tensor partial = empty({chunks, 2, s.cols}, TensorOptions(DType::f64).with_device(x.device()));
    const WeightGrad<T> a{data_or_null<T>(grad),      data_or_null<T>(x),         data_or_null<T>(mean),
                          data_or_null<T>(rstd),      mutable_or_null<T>(grad_w), mutable_or_null<T>(grad_b),
                          s.rows,                     s.cols,                     chunk_rows,
                          chunks,                     static_cast<double*>(partial.raw_data())};
    const int64_t tiles = (s.cols + kColTile - 1) / kColTile;
    check(launch(Dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)), Dim3(kWeightGradThreads),
                 kWeightGradSharedBytes, stream, norm_weight_grad_kernel<T>, a),
          op_name(s, true));
    constexpr unsigned kSumThreads = 256;
    check(launch(Dim3(static_cast<unsigned>((s.cols + kSumThreads - 1) / kSumThreads)), Dim3(kSumThreads), 0, stream,
                 norm_weight_grad_sum_kernel<T>, a),
          op_name(s, true));
  }
}

// The Backend::norm entry after its device checks.
template <class Check>
void run_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
                 const Tensor& sum, const Tensor& mean, const Tensor& rstd, const kernels::NormShape& s,
                 Stream stream, Check&& check) {
  const char* op = op_name(s, false);
  check_float(x, op);
  const int64_t n = s.rows * s.cols;
  check_numel(x, n, op, "x");
  check_numel(residual, n, op, "residual");
  check_numel(out, n, op, "out");
  if (residual.defined()) check_numel(sum, n, op, "sum");
  check_numel(weight, s.cols, op, "weight");
  check_numel(bias, s.cols, op, "bias");
  check_numel(mean, s.rows, op, "mean");
  check_numel(rstd, s.rows, op, "rstd");
  if (s.rows == 0) return;
  LOOM_CHECK(s.cols > 0, op, ": empty rows");
  LOOM_CHECK(s.rows <= INT_MAX, op, ": ", s.rows, " rows, above the grid's ", INT_MAX);
  if (x.dtype() == DType::f32)
    launch_forward<float>(x, residual, weight, bias, out, sum, mean, rstd, s, stream, check);
  else
    launch_forward<double>(x, residual, weight, bias, out, sum, mean, rstd, s, stream, check);
}

// The Backend::norm_backward entry after its device checks.
template <class Check>
void run_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                  const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_w,
                  const Tensor& grad_b, const kernels::NormShape& s, Stream stream, Check&& check) {
  const char* op = op_name(s, true);
  check_float(x, op);
  const int64_t n = s.rows * s.cols;
  check_numel(grad, n, op, "grad");
  check_numel(grad_sum, n, op, "grad_sum");
  check_numel(x, n, op, "x");
  check_numel(grad_x, n, op, "grad_x");
  check_numel(weight, s.cols, op, "weight");
  check_numel(grad_w, s.cols, op, "grad_w");
  check_numel(grad_b, s.cols, op, "grad_b");
  check_numel(mean, s.rows, op, "mean");
  check_numel(rstd, s.rows, op, "rstd");
  if (s.cols == 0) return;
  LOOM_CHECK(s.rows <= INT_MAX, op, ": ", s.rows, " rows, above the grid's ", INT_MAX);
  if (x.dtype() == DType::f32)
    launch_backward<float>(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_w, grad_b, s, stream, check);
  else
    launch_backward<double>(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_w, grad_b, s, stream, check);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::norm_kernels
