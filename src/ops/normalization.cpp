// layer_norm and rms_norm over trailing dims, one fused kernel each way.
#include "loom/ops/elementwise.hpp"
#include "loom/ops/nn.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

Tensor norm_impl(const char* name, const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight,
                 const Tensor& bias, double eps, bool rms) {
  check_defined(x_in, name, "x");
  if (is_half(x_in.dtype())) {
    auto up = [](const Tensor& t) { return t.defined() ? t.to(DType::f32) : t; };
    return norm_impl(name, up(x_in), normalized_shape, up(weight), up(bias), eps, rms).to(x_in.dtype());
  }
  ops::check_floating(x_in, name);
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  LOOM_CHECK(nd >= 1 && nd <= x_in.dim() &&
                 Shape(x_in.shape().end() - nd, x_in.shape().end()) == normalized_shape,
             name, ": normalized_shape ", shape_str(normalized_shape), " does not match the trailing dims of input ",
             shape_str(x_in.shape()));
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    ops::check_same_dtype(x_in, *p, name);
    LOOM_CHECK(p->shape() == normalized_shape, name, ": ", p == &weight ? "weight " : "bias ", shape_str(p->shape()),
               " must have shape ", shape_str(normalized_shape));
  }
  kernels::NormShape s;
  s.cols = numel(normalized_shape);
  s.rows = s.cols == 0 ? 0 : x_in.numel() / s.cols;
  s.eps = eps;
  s.rms = rms;
  Tensor x = x_in.contiguous().detach();
  Tensor w = weight.defined() ? weight.contiguous().detach() : Tensor();
  Tensor b = bias.defined() ? bias.contiguous().detach() : Tensor();
  const auto opts = TensorOptions(x.dtype()).with_device(x.device());
  Tensor out = empty(x.shape(), opts), mean = empty({s.rows}, opts), rstd = empty({s.rows}, opts);
  ops::kernels_for(x).norm(x, w, b, out, mean, rstd, s);
  const bool has_w = w.defined(), has_b = b.defined();
  return ops::record(name, out, {x_in, weight, bias}, {x, w, mean, rstd},
                     [s, has_w, has_b, ns = normalized_shape](const BackwardContext& ctx, const Tensor& g) {
                       Tensor x = ctx.saved(0), w = ctx.saved(1), mean = ctx.saved(2), rstd = ctx.saved(3);
                       const auto opts = TensorOptions(x.dtype()).with_device(x.device());
                       Tensor gx = ctx.needs_grad(0) ? empty(x.shape(), opts) : Tensor();
                       Tensor gw = has_w && ctx.needs_grad(1) ? empty(ns, opts) : Tensor();
                       Tensor gb = has_b && ctx.needs_grad(2) ? empty(ns, opts) : Tensor();
                       ops::kernels_for(x).norm_backward(g.contiguous(), x, w, mean, rstd, gx, gw, gb, s);
                       return std::vector<Tensor>{gx, gw, gb};
                     });
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return norm_impl("layer_norm", ops::autocast_to_f32(x), normalized_shape, weight, bias, eps, false);
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, double eps) {
  return norm_impl("rms_norm", ops::autocast_to_f32(x), normalized_shape, weight, Tensor(), eps, true);
}

}  // namespace loom
