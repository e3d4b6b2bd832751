// The tensor side of the norm kernels (norm.cuh), shared by the device entries
// (norm.cu) and the host emulation (emulated_tiles.cpp): the shape checks, the
// kernel arguments and the launches. `stream` is the device's stream (or the
// emulator's); check(status, what) reports a failed launch.
#pragma once

#include <climits>
#include <initializer_list>

#include "kernels/backend.hpp"
#include "kernels/norm_dtypes.hpp"
#include "loom/ops/creation.hpp"
#include "loom/core/error.hpp"
#include "norm.cuh"
#include "row_quads_args.hpp"

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

// The operands that must share the arithmetic's dtype (all but x and out, or
// grad and grad_x_half).
inline void check_same_dtype(std::initializer_list<const Tensor*> operands, DType dtype, const char* op,
                             const char* names) {
  for (const Tensor* t : operands)
    LOOM_CHECK(!t->defined() || t->dtype() == dtype, op, ": ", names, " must all be ", dtype_name(dtype), ", got ",
               dtype_name(t->dtype()));
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <class T>
T* mutable_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

template <class In, class Out>
struct WarpForwardKernel {
  template <int Warps, int Quads>
  struct Pick {
    static auto get() { return norm_warp_rows_kernel<In, Out, Warps, Quads>; }
  };
};
// kSharedSums: the kernel variant norm_backward_shared_sums, which only
// warp-wide rows (Warps == 1) have.
template <class G, bool kSharedSums = false>
struct WarpBackwardKernel {
  template <int Warps, int Quads>
  struct Pick {
    static auto get() { return norm_warp_rows_backward_kernel<G, Warps, Quads, kSharedSums && Warps == 1>; }
  };
};

template <class Check>
void launch_warp_rows_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                              const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                              const kernels::NormShape& s, RowFit fit, bool prefetch_next, Stream stream,
                              Check& check) {
  const auto blocks = static_cast<unsigned>(warp_rows_forward_blocks(s.rows, fit.warps));
  with_f32_or_bf16(x.dtype(), [&]<class In>() {
    with_f32_or_bf16(out.dtype(), [&]<class Out>() {
      const WarpForward<In, Out> a{data_or_null<In>(x),          data_or_null<float>(residual),
                                   data_or_null<float>(weight),  data_or_null<float>(bias),
                                   mutable_or_null<Out>(out),    mutable_or_null<float>(sum),
                                   mutable_or_null<float>(mean), mutable_or_null<float>(rstd),
                                   s.rows,                       s.cols,
                                   s.eps,                        s.rms,
                                   kWarpRowThreads,              prefetch_next};
      check(launch(Dim3(blocks), Dim3(kWarpRowThreads), row_quads_shared_bytes(fit.warps), stream,
                   by_fit<WarpForwardKernel<In, Out>::template Pick>(fit), a),
            op_name(s, false));
    });
  });
}

// The block-per-row kernels, every operand in T.
template <class T, class Check>
void launch_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                    const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                    const kernels::NormShape& s, Stream stream, Check& check) {
  const unsigned threads = row_threads(s.cols);
  const Forward<T> a{data_or_null<T>(x),      data_or_null<T>(residual), data_or_null<T>(weight),
                     data_or_null<T>(bias),   mutable_or_null<T>(out),   mutable_or_null<T>(sum),
                     mutable_or_null<T>(mean), mutable_or_null<T>(rstd), s.rows,
                     s.cols,                  s.eps,                     s.rms,
                     threads};
  check(launch(Dim3(static_cast<unsigned>(s.rows)), Dim3(threads), simt::kBlockReduceSharedBytes, stream,
               norm_rows_kernel<T>, a),
        op_name(s, false));
}

// The weight and bias gradients from [chunks, 2, cols] partial sums.
template <class T, class Check>
void sum_weight_grad_chunks(const ChunkSums<T>& a, Stream stream, Check& check, const char* op) {
  const int64_t tiles = (2 * a.cols + kColTile - 1) / kColTile;
  check(launch(Dim3(static_cast<unsigned>(tiles)), Dim3(kWeightGradThreads), kWeightGradThreads * sizeof(double),
               stream, norm_weight_grad_sum_kernel<T>, a),
        op);
}

template <class Check>
void launch_warp_rows_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                               const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                               const Tensor& grad_x_half, const Tensor& grad_w, const Tensor& grad_b,
                               const kernels::NormShape& s, RowFit fit, bool shared_sums, Stream stream,
                               Check& check) {
  const bool sums = grad_w.defined() || grad_b.defined();
  const int64_t chunk_rows = warp_rows_backward_chunk(s.rows, fit.warps);
  const int64_t blocks = (s.rows + chunk_rows - 1) / chunk_rows;
  Tensor partial = sums ? empty({blocks, 2, s.cols}, TensorOptions(DType::f64).with_device(x.device())) : Tensor();
  with_f32_or_bf16(grad.dtype(), [&]<class G>() {
    const WarpBackward<G> a{data_or_null<G>(grad),      data_or_null<float>(grad_sum), data_or_null<float>(x),
                            data_or_null<float>(weight), data_or_null<float>(mean),    data_or_null<float>(rstd),
                            mutable_or_null<float>(grad_x), mutable_or_null<simt::bf16>(grad_x_half),
                            mutable_or_null<double>(partial), s.rows, s.cols, chunk_rows, s.rms};
    const auto kernel = shared_sums ? by_fit<WarpBackwardKernel<G, true>::template Pick>(fit)
                                    : by_fit<WarpBackwardKernel<G, false>::template Pick>(fit);
    check(launch(Dim3(static_cast<unsigned>(blocks)), Dim3(kWarpRowThreads),
                 warp_rows_backward_shared_bytes(s.cols, fit.warps, sums), stream, kernel, a),
          op_name(s, true));
  });
  if (!sums) return;
  const ChunkSums<float> sums_of{data_or_null<double>(partial), mutable_or_null<float>(grad_w),
                                 mutable_or_null<float>(grad_b), s.cols, blocks};
  sum_weight_grad_chunks(sums_of, stream, check, op_name(s, true));
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
    const WeightGrad<T> a{data_or_null<T>(grad), data_or_null<T>(x), data_or_null<T>(mean),
                          data_or_null<T>(rstd), s.rows,             s.cols,
                          chunk_rows,            chunks,             static_cast<double*>(partial.raw_data())};
    const int64_t tiles = (s.cols + kColTile - 1) / kColTile;
    check(launch(Dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)), Dim3(kWeightGradThreads),
                 kWeightGradSharedBytes, stream, norm_weight_grad_kernel<T>, a),
          op_name(s, true));
    sum_weight_grad_chunks(ChunkSums<T>{a.partial, mutable_or_null<T>(grad_w), mutable_or_null<T>(grad_b), s.cols,
                                        chunks},
                           stream, check, op_name(s, true));
  }
}

// The Backend::norm entry after its device checks: the warp-per-row kernels
// when they take the operands (half x and out read and written directly),
// else the block-per-row kernels in mean's dtype (halves widened around them).
// prefetch_next: the kernel variant norm_forward_prefetch (norm.cuh).
template <class Check>
void run_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
                 const Tensor& sum, const Tensor& mean, const Tensor& rstd, const kernels::NormShape& s,
                 Stream stream, Check&& check, bool prefetch_next = false) {
  const char* op = op_name(s, false);
  check_float(mean, op);
  check_same_dtype({&residual, &weight, &bias, &sum, &rstd}, mean.dtype(), op, "residual, weight, bias, sum, rstd");
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
  if (const RowFit fit = row_quads_fit(mean.dtype(), s.cols, {&x, &residual, &weight, &bias, &out, &sum}); fit.warps)
    return launch_warp_rows_forward(x, residual, weight, bias, out, sum, mean, rstd, s, fit, prefetch_next, stream,
                                    check);
  kernels::norm_in_one_dtype(x, residual, weight, bias, out, sum, mean, rstd, s,
                             [&](const Tensor& x1, const Tensor& r1, const Tensor& w1, const Tensor& b1,
                                 const Tensor& o1, const Tensor& s1, const Tensor& m1, const Tensor& v1,
                                 const kernels::NormShape& shape) {
                               if (m1.dtype() == DType::f32)
                                 launch_forward<float>(x1, r1, w1, b1, o1, s1, m1, v1, shape, stream, check);
                               else
                                 launch_forward<double>(x1, r1, w1, b1, o1, s1, m1, v1, shape, stream, check);
                             });
}

// The Backend::norm_backward entry after its device checks, chosen as the
// forward's.
template <class Check>
void run_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                  const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                  const Tensor& grad_w, const Tensor& grad_b, const kernels::NormShape& s, Stream stream,
                  Check&& check, bool shared_sums = false) {
  const char* op = op_name(s, true);
  check_float(x, op);
  check_same_dtype({&grad_sum, &weight, &mean, &rstd, &grad_x, &grad_w, &grad_b}, x.dtype(), op,
                   "grad_sum, weight, mean, rstd, grad_x, grad_w, grad_b");
  const int64_t n = s.rows * s.cols;
  check_numel(grad, n, op, "grad");
  check_numel(grad_sum, n, op, "grad_sum");
  check_numel(x, n, op, "x");
  check_numel(grad_x, n, op, "grad_x");
  check_numel(grad_x_half, n, op, "grad_x_half");
  check_numel(weight, s.cols, op, "weight");
  check_numel(grad_w, s.cols, op, "grad_w");
  check_numel(grad_b, s.cols, op, "grad_b");
  check_numel(mean, s.rows, op, "mean");
  check_numel(rstd, s.rows, op, "rstd");
  if (s.cols == 0) return;
  LOOM_CHECK(s.rows <= INT_MAX, op, ": ", s.rows, " rows, above the grid's ", INT_MAX);
  const bool bf16_half = !grad_x_half.defined() || grad_x_half.dtype() == DType::bf16;
  const RowFit fit = s.rows > 0 && bf16_half
                        ? row_quads_fit(x.dtype(), s.cols, {&grad, &grad_sum, &x, &weight, &grad_x, &grad_x_half})
                        : RowFit{};
  if (fit.warps)
    return launch_warp_rows_backward(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_x_half, grad_w, grad_b, s,
                                     fit, shared_sums, stream, check);
  kernels::norm_backward_in_one_dtype(
      grad, grad_sum, x, weight, mean, rstd, grad_x, grad_x_half, grad_w, grad_b, s,
      [&](const Tensor& g1, const Tensor& gs1, const Tensor& x1, const Tensor& w1, const Tensor& m1,
          const Tensor& v1, const Tensor& gx1, const Tensor& gw1, const Tensor& gb1, const kernels::NormShape& shape) {
        if (x1.dtype() == DType::f32)
          launch_backward<float>(g1, gs1, x1, w1, m1, v1, gx1, gw1, gb1, shape, stream, check);
        else
          launch_backward<double>(g1, gs1, x1, w1, m1, v1, gx1, gw1, gb1, shape, stream, check);
      });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::norm_kernels
