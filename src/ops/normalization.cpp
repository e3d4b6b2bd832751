// layer_norm and rms_norm over trailing dims, one fused kernel each way; and
// the same fused with the residual add before them (residual_layer_norm,
// residual_rms_norm), one autograd node with two outputs.
#include "loom/ops/elementwise.hpp"
#include "loom/ops/nn.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

// Checks x against the normalized shape and the affine parameters; x [..., ns]
// is viewed as [rows, numel(ns)].
kernels::NormShape norm_shape(const char* name, const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                              const Tensor& bias, double eps, bool rms) {
  ops::check_floating(x, name);
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  LOOM_CHECK(nd >= 1 && nd <= x.dim() && Shape(x.shape().end() - nd, x.shape().end()) == normalized_shape, name,
             ": normalized_shape ", shape_str(normalized_shape), " does not match the trailing dims of input ",
             shape_str(x.shape()));
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    ops::check_same_dtype(x, *p, name);
    ops::check_same_device(x, *p, name);
    LOOM_CHECK(p->shape() == normalized_shape, name, ": ", p == &weight ? "weight " : "bias ", shape_str(p->shape()),
               " must have shape ", shape_str(normalized_shape));
  }
  kernels::NormShape s;
  s.cols = numel(normalized_shape);
  s.rows = s.cols == 0 ? 0 : x.numel() / s.cols;
  s.eps = eps;
  s.rms = rms;
  return s;
}

Tensor contiguous_detached(const Tensor& t) { return t.defined() ? t.contiguous().detach() : Tensor(); }

// The tensors both norms' backward reads, and what it writes.
struct NormSaved {
  Tensor x, w, mean, rstd;
  static NormSaved unpack(const BackwardContext& ctx) {
    return {ctx.saved(0), ctx.saved(1), ctx.saved(2), ctx.saved(3)};
  }
};

// grad_x (when wanted), grad_w and grad_b from the norm's output gradient g
// (plus grad_sum, added into grad_x, for the fused residual).
std::vector<Tensor> norm_gradients(const NormSaved& sv, const Tensor& g, const Tensor& grad_sum, bool want_x,
                                   bool want_w, bool want_b, const Shape& ns, const kernels::NormShape& s) {
  const auto opts = TensorOptions(sv.x.dtype()).with_device(sv.x.device());
  Tensor gx = want_x ? empty(sv.x.shape(), opts) : Tensor();
  Tensor gw = want_w ? empty(ns, opts) : Tensor();
  Tensor gb = want_b ? empty(ns, opts) : Tensor();
  ops::kernels_for(sv.x).norm_backward(g.contiguous(), grad_sum.defined() ? grad_sum.contiguous() : Tensor(), sv.x,
                                       sv.w, sv.mean, sv.rstd, gx, gw, gb, s);
  return {gx, gw, gb};
}

Tensor norm_impl(const char* name, const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight,
                 const Tensor& bias, double eps, bool rms) {
  check_defined(x_in, name, "x");
  if (is_half(x_in.dtype())) {
    auto up = [](const Tensor& t) { return t.defined() ? t.to(DType::f32) : t; };
    return norm_impl(name, up(x_in), normalized_shape, up(weight), up(bias), eps, rms).to(x_in.dtype());
  }
  const kernels::NormShape s = norm_shape(name, x_in, normalized_shape, weight, bias, eps, rms);
  Tensor x = contiguous_detached(x_in), w = contiguous_detached(weight), b = contiguous_detached(bias);
  const auto opts = TensorOptions(x.dtype()).with_device(x.device());
  Tensor out = empty(x.shape(), opts), mean = empty({s.rows}, opts), rstd = empty({s.rows}, opts);
  ops::kernels_for(x).norm(x, Tensor(), w, b, out, Tensor(), mean, rstd, s);
  const bool has_w = w.defined(), has_b = b.defined();
  return ops::record(name, out, {x_in, weight, bias}, {x, w, mean, rstd},
                     [s, has_w, has_b, ns = normalized_shape](const BackwardContext& ctx, const Tensor& g) {
                       return norm_gradients(NormSaved::unpack(ctx), g, Tensor(), ctx.needs_grad(0),
                                             has_w && ctx.needs_grad(1), has_b && ctx.needs_grad(2), ns, s);
                     });
}

ResidualNorm residual_norm_impl(const char* name, const Tensor& x, const Tensor& residual,
                                const Shape& normalized_shape, const Tensor& weight, const Tensor& bias, double eps,
                                bool rms) {
  check_defined(x, name, "x");
  check_defined(residual, name, "residual");
  LOOM_CHECK(x.shape() == residual.shape(), name, ": residual ", shape_str(residual.shape()),
             " must have the shape of x ", shape_str(x.shape()));
  if (auto p = ops::promoted_pair(x, residual))
    return residual_norm_impl(name, p->first, p->second, normalized_shape, weight, bias, eps, rms);
  ops::check_same_dtype(x, residual, name);  // the kernels read both as one type
  ops::check_same_device(x, residual, name);
  if (is_half(x.dtype())) {  // a half sum: as the two ops would compute it
    Tensor sum = add(x, residual);
    return {sum, rms ? rms_norm(sum, normalized_shape, weight, eps) : layer_norm(sum, normalized_shape, weight, bias, eps)};
  }
  const kernels::NormShape s = norm_shape(name, x, normalized_shape, weight, bias, eps, rms);
  Tensor xc = contiguous_detached(x), rc = contiguous_detached(residual);
  Tensor w = contiguous_detached(weight), b = contiguous_detached(bias);
  const auto opts = TensorOptions(x.dtype()).with_device(x.device());
  Tensor sum = empty(x.shape(), opts), out = empty(x.shape(), opts);
  Tensor mean = empty({s.rows}, opts), rstd = empty({s.rows}, opts);
  ops::kernels_for(xc).norm(xc, rc, w, b, out, sum, mean, rstd, s);
  const bool has_w = w.defined(), has_b = b.defined();
  std::vector<Tensor> outs = ops::record(
      name, std::vector<Tensor>{sum, out}, {x, residual, weight, bias}, {sum, w, mean, rstd},
      [s, has_w, has_b, ns = normalized_shape](const BackwardContext& ctx, const std::vector<Tensor>& grads) {
        const Tensor& grad_sum = grads[0];
        const Tensor& grad_out = grads[1];
        // Only the sum was used: its gradient passes to both addends.
        if (!grad_out.defined()) return std::vector<Tensor>{grad_sum, grad_sum, Tensor(), Tensor()};
        std::vector<Tensor> g =
            norm_gradients(NormSaved::unpack(ctx), grad_out, grad_sum, ctx.needs_grad(0) || ctx.needs_grad(1),
                           has_w && ctx.needs_grad(2), has_b && ctx.needs_grad(3), ns, s);
        return std::vector<Tensor>{g[0], g[0], g[1], g[2]};
      });
  return {outs[0], outs[1]};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return norm_impl("layer_norm", ops::autocast_to_f32(x), normalized_shape, weight, bias, eps, false);
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, double eps) {
  return norm_impl("rms_norm", ops::autocast_to_f32(x), normalized_shape, weight, Tensor(), eps, true);
}

ResidualNorm residual_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                 const Tensor& weight, const Tensor& bias, double eps) {
  return residual_norm_impl("residual_layer_norm", x, residual, normalized_shape, weight, bias, eps, false);
}

ResidualNorm residual_rms_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                               const Tensor& weight, double eps) {
  return residual_norm_impl("residual_rms_norm", x, residual, normalized_shape, weight, Tensor(), eps, true);
}

}  // namespace loom
