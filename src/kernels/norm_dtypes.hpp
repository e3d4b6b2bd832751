// The norm entries' mixed dtypes (backend.hpp): under autocast the fused
// residual norm reads a half branch x and writes a half output (it feeds a
// product), and its backward reads the output's half gradient and writes a
// half copy of grad_x (the branch's gradient). Everything else is in one
// dtype T, f32 or f64: the dtype of mean. A kernel built for T alone runs
// such a call through these wrappers: half operands widened to T, half
// results computed in T and rounded once.
#pragma once

#include "kernels/backend.hpp"
#include "loom/core/error.hpp"
#include "loom/ops/creation.hpp"

namespace loom::kernels {

inline Tensor widened_to(const Tensor& t, DType dtype) {
  return t.defined() && t.dtype() != dtype ? t.to(dtype) : t;
}

// The half operands the norm entries accept, checked: x and out (forward),
// grad and grad_x_half (backward) in T or a half dtype.
inline void check_norm_dtype(const Tensor& t, DType dtype, const char* op, const char* what) {
  LOOM_CHECK(!t.defined() || t.dtype() == dtype || is_half(t.dtype()), op, ": '", what, "' is ",
             dtype_name(t.dtype()), ", expected ", dtype_name(dtype), " or a half dtype");
}

// same(x, residual, weight, bias, out, sum, mean, rstd, s) with x and out in T.
template <class Same>
void norm_in_one_dtype(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                       const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                       const NormShape& s, Same&& same) {
  const DType t = mean.dtype();
  check_norm_dtype(x, t, s.rms ? "rms_norm" : "layer_norm", "x");
  check_norm_dtype(out, t, s.rms ? "rms_norm" : "layer_norm", "out");
  if (x.dtype() == t && out.dtype() == t) return same(x, residual, weight, bias, out, sum, mean, rstd, s);
  const Tensor wide_out = out.dtype() == t ? out : empty(out.shape(), TensorOptions(t).with_device(out.device()));
  same(widened_to(x, t), residual, weight, bias, wide_out, sum, mean, rstd, s);
  if (out.dtype() != t) Tensor(out).copy_(wide_out);  // a handle on the caller's buffer
}

// same(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_w, grad_b, s) with
// grad in T; grad_x_half (when defined) then gets grad_x rounded.
template <class Same>
void norm_backward_in_one_dtype(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                                const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                                const Tensor& grad_x_half, const Tensor& grad_w, const Tensor& grad_b,
                                const NormShape& s, Same&& same) {
  const DType t = x.dtype();
  const char* op = s.rms ? "rms_norm backward" : "layer_norm backward";
  check_norm_dtype(grad, t, op, "grad");
  LOOM_CHECK(!grad_x_half.defined() || is_half(grad_x_half.dtype()), op, ": 'grad_x_half' is ",
             dtype_name(grad_x_half.dtype()), ", expected a half dtype");
  Tensor gx = grad_x;
  if (!gx.defined() && grad_x_half.defined()) gx = empty(x.shape(), TensorOptions(t).with_device(x.device()));
  same(widened_to(grad, t), grad_sum, x, weight, mean, rstd, gx, grad_w, grad_b, s);
  if (grad_x_half.defined()) Tensor(grad_x_half).copy_(gx);
}

}  // namespace loom::kernels
