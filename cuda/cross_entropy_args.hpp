// The tensor side of the cross-entropy kernels (cross_entropy.cuh), shared by
// the device entries (loss.cu) and the host emulation: the checks, the kernel
// arguments and the launches. check(status, what) reports a failed launch.
#pragma once

#include <climits>

#include "cross_entropy.cuh"
#include "kernels/backend.hpp"
#include "loom/core/error.hpp"

namespace loom::cross_entropy_kernels {
inline namespace LOOM_SIMT_ABI {

inline void check_args(const Tensor& logits, const Tensor& targets, const char* op) {
  LOOM_CHECK(logits.dim() == 2 && logits.is_contiguous(), op, ": logits must be a contiguous [N, C], got ",
             shape_str(logits.shape()));
  LOOM_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets ", shape_str(targets.shape()),
             " for logits ", shape_str(logits.shape()));
  LOOM_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, op, ": targets must be i64 or i32, got ",
             dtype_name(targets.dtype()));
  LOOM_CHECK(logits.dtype() == DType::f32 || logits.dtype() == DType::f64 || logits.dtype() == DType::bf16, op,
             ": expected f32, f64 or bf16 logits, got ", dtype_name(logits.dtype()));
  LOOM_CHECK(logits.size(0) <= INT_MAX, op, ": ", logits.size(0), " rows, above the grid's ", INT_MAX);
}

// `out`: the losses [N] (forward) or the gradients [N, C] (backward).
// pack_rescale: the forward's kernel variant (cross_entropy.cuh).
template <class T, class S, class Check>
void launch_rows(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& scale,
                 const Tensor& out, const kernels::CrossEntropyParams& p, bool backward, bool pack_rescale,
                 Stream stream, Check& check) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const Rows<T, S> a{static_cast<const S*>(logits.raw_data()),
                     targets.raw_data(),
                     targets.dtype() == DType::i64,
                     targets.stride(0),
                     scale.defined() ? static_cast<const T*>(scale.raw_data()) : nullptr,
                     scale.defined() ? scale.stride(0) : 0,
                     backward ? nullptr : static_cast<T*>(out.raw_data()),
                     backward ? static_cast<S*>(out.raw_data()) : nullptr,
                     static_cast<T*>(lse.raw_data()),
                     c,
                     p.ignore_index,
                     p.label_smoothing,
                     row_threads(c)};
  const auto kernel = backward       ? cross_entropy_backward_kernel<T, S>
                      : pack_rescale ? cross_entropy_kernel<T, S, true>
                                     : cross_entropy_kernel<T, S, false>;
  check(launch(Dim3(static_cast<unsigned>(n)), Dim3(a.threads), kBlockReduceSharedBytes, stream, kernel, a),
        backward ? "cross_entropy backward" : "cross_entropy");
}

// The arithmetic's dtype for these logits: f32 for bf16, else theirs.
inline DType row_dtype(const Tensor& logits) {
  return logits.dtype() == DType::bf16 ? DType::f32 : logits.dtype();
}

inline void check_rows(const Tensor& rows, const Tensor& logits, const char* op, const char* what) {
  LOOM_CHECK(rows.is_contiguous() && rows.numel() == logits.size(0) && rows.dtype() == row_dtype(logits), op, ": ",
             what, " must be a contiguous [N] of ", dtype_name(row_dtype(logits)));
}

template <class Check>
void launch_for_dtype(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& scale,
                      const Tensor& out, const kernels::CrossEntropyParams& p, bool backward, bool pack_rescale,
                      Stream stream, Check& check) {
  if (logits.dtype() == DType::f32)
    launch_rows<float, float>(logits, targets, lse, scale, out, p, backward, pack_rescale, stream, check);
  else if (logits.dtype() == DType::bf16)
    launch_rows<float, simt::bf16>(logits, targets, lse, scale, out, p, backward, pack_rescale, stream, check);
  else
    launch_rows<double, double>(logits, targets, lse, scale, out, p, backward, pack_rescale, stream, check);
}

// logits [N, C], targets [N] -> losses [N] (0 where ignored), and each row's
// log-sum-exp [N] for the backward. pack_rescale: the kernel variant.
template <class Check>
void run_forward(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                 const kernels::CrossEntropyParams& p, Stream stream, Check&& check, bool pack_rescale = false) {
  check_args(logits, targets, "cross_entropy");
  check_rows(losses, logits, "cross_entropy", "losses");
  check_rows(lse, logits, "cross_entropy", "lse");
  if (logits.size(0) == 0) return;
  LOOM_CHECK(logits.size(1) > 0, "cross_entropy: no classes");
  launch_for_dtype(logits, targets, lse, Tensor(), losses, p, false, pack_rescale, stream, check);
}

// grad_logits = row_scale[i] * d loss_i / d logits.
template <class Check>
void run_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& row_scale,
                  const Tensor& grad_logits, const kernels::CrossEntropyParams& p, Stream stream, Check&& check) {
  check_args(logits, targets, "cross_entropy backward");
  check_rows(lse, logits, "cross_entropy backward", "lse");
  LOOM_CHECK(grad_logits.is_contiguous() && grad_logits.shape() == logits.shape() &&
                 grad_logits.dtype() == logits.dtype(),
             "cross_entropy backward: grad_logits must be contiguous like the logits");
  LOOM_CHECK(row_scale.dim() == 1 && row_scale.size(0) == logits.size(0) && row_scale.dtype() == row_dtype(logits),
             "cross_entropy backward: row_scale must be [N] of ", dtype_name(row_dtype(logits)), ", got ",
             dtype_name(row_scale.dtype()), " ", shape_str(row_scale.shape()));
  if (logits.size(0) == 0 || logits.size(1) == 0) return;
  launch_for_dtype(logits, targets, lse, row_scale, grad_logits, p, true, false, stream, check);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::cross_entropy_kernels
