// layer_norm and rms_norm over trailing dims, one fused kernel each way; and
// the same fused with the residual add before them (residual_layer_norm,
// residual_rms_norm), one autograd node with two outputs.
#include <optional>

#include "loom/ops/autocast.hpp"
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

// grad_x (when wanted), grad_x rounded to half_copy too (when given), grad_w
// and grad_b from the norm's output gradient g (plus grad_sum, added into
// grad_x, for the fused residual). g may be half (a half output's).
struct NormGradients {
  Tensor x, x_half, w, b;
};
NormGradients norm_gradients(const NormSaved& sv, const Tensor& g, const Tensor& grad_sum, bool want_x,
                             std::optional<DType> half_copy, bool want_w, bool want_b, const Shape& ns,
                             const kernels::NormShape& s) {
  const auto opts = TensorOptions(sv.x.dtype()).with_device(sv.x.device());
  NormGradients r;
  if (want_x) r.x = empty(sv.x.shape(), opts);
  if (half_copy) r.x_half = empty(sv.x.shape(), TensorOptions(*half_copy).with_device(sv.x.device()));
  if (want_w) r.w = empty(ns, opts);
  if (want_b) r.b = empty(ns, opts);
  ops::kernels_for(sv.x).norm_backward(g.contiguous(), grad_sum.defined() ? grad_sum.contiguous() : Tensor(), sv.x,
                                       sv.w, sv.mean, sv.rstd, r.x, r.x_half, r.w, r.b, s);
  return r;
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
                       const NormGradients r =
                           norm_gradients(NormSaved::unpack(ctx), g, Tensor(), ctx.needs_grad(0), std::nullopt,
                                          has_w && ctx.needs_grad(1), has_b && ctx.needs_grad(2), ns, s);
                       return std::vector<Tensor>{r.x, r.w, r.b};
                     });
}

ResidualNorm residual_norm_impl(const char* name, const Tensor& x, const Tensor& residual,
                                const Shape& normalized_shape, const Tensor& weight, const Tensor& bias, double eps,
                                bool rms, bool normed_feeds_product) {
  check_defined(x, name, "x");
  check_defined(residual, name, "residual");
  LOOM_CHECK(x.shape() == residual.shape(), name, ": residual ", shape_str(residual.shape()),
             " must have the shape of x ", shape_str(x.shape()));
  // A half addend with an f32 or f64 one (autocast's bf16 branch on the f32
  // stream) is read as it is; the kernels take it as `x`, the wide one as
  // the residual (the sum's gradient is both addends').
  const bool half_x = is_half(x.dtype()), half_r = is_half(residual.dtype());
  const DType other = (half_x ? residual : x).dtype();
  const bool mixed = half_x != half_r && (other == DType::f32 || other == DType::f64);
  if (!mixed) {
    if (auto p = ops::promoted_pair(x, residual))
      return residual_norm_impl(name, p->first, p->second, normalized_shape, weight, bias, eps, rms,
                                normed_feeds_product);
    ops::check_same_dtype(x, residual, name);  // the kernels read both as one type
  }
  ops::check_same_device(x, residual, name);
  if (half_x && half_r) {  // a half sum: as the two ops would compute it
    Tensor sum = add(x, residual);
    return {sum, rms ? rms_norm(sum, normalized_shape, weight, eps) : layer_norm(sum, normalized_shape, weight, bias, eps)};
  }
  const Tensor& branch = half_r ? residual : x;  // read as `x`: half when mixed
  const Tensor& stream = half_r ? x : residual;
  const DType wide = stream.dtype();
  // The branch's gradient dtype when it differs from the stream's.
  const std::optional<DType> half = mixed ? std::optional<DType>(branch.dtype()) : std::nullopt;
  const kernels::NormShape s = norm_shape(name, stream, normalized_shape, weight, bias, eps, rms);
  Tensor xc = contiguous_detached(branch), rc = contiguous_detached(stream);
  Tensor w = contiguous_detached(weight), b = contiguous_detached(bias);
  const auto opts = TensorOptions(wide).with_device(x.device());
  // Under autocast a `normed` that feeds a product is written in the autocast
  // dtype, rounded once, instead of in f32 and cast there.
  const DType out_dtype = normed_feeds_product && autocast_enabled() && wide == DType::f32 ? autocast_dtype() : wide;
  Tensor sum = empty(x.shape(), opts), out = empty(x.shape(), TensorOptions(out_dtype).with_device(x.device()));
  Tensor mean = empty({s.rows}, opts), rstd = empty({s.rows}, opts);
  ops::kernels_for(xc).norm(xc, rc, w, b, out, sum, mean, rstd, s);
  const bool has_w = w.defined(), has_b = b.defined();
  const size_t branch_input = half_r ? 1 : 0, stream_input = 1 - branch_input;
  std::vector<Tensor> outs = ops::record(
      name, std::vector<Tensor>{sum, out}, {x, residual, weight, bias}, {sum, w, mean, rstd},
      [s, has_w, has_b, half, branch_input, stream_input, ns = normalized_shape](
          const BackwardContext& ctx, const std::vector<Tensor>& grads) {
        const Tensor& grad_sum = grads[0];
        const Tensor& grad_out = grads[1];
        const bool want_branch = ctx.needs_grad(branch_input), want_stream = ctx.needs_grad(stream_input);
        std::vector<Tensor> g(4);
        if (!grad_out.defined()) {  // only the sum was used: its gradient passes to both addends
          g[stream_input] = grad_sum;
          g[branch_input] = !want_branch ? Tensor() : half ? grad_sum.to(*half) : grad_sum;
          return g;
        }
        // The wide addend takes grad_x; a half branch its rounded copy.
        const NormGradients r = norm_gradients(
            NormSaved::unpack(ctx), grad_out, grad_sum, want_stream || (want_branch && !half),
            want_branch ? half : std::nullopt, has_w && ctx.needs_grad(2), has_b && ctx.needs_grad(3), ns, s);
        g[stream_input] = r.x;
        g[branch_input] = half ? r.x_half : r.x;
        g[2] = r.w;
        g[3] = r.b;
        return g;
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
                                 const Tensor& weight, const Tensor& bias, double eps, bool normed_feeds_product) {
  return residual_norm_impl("residual_layer_norm", x, residual, normalized_shape, weight, bias, eps, false,
                            normed_feeds_product);
}

ResidualNorm residual_rms_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                               const Tensor& weight, double eps, bool normed_feeds_product) {
  return residual_norm_impl("residual_rms_norm", x, residual, normalized_shape, weight, Tensor(), eps, true,
                            normed_feeds_product);
}

}  // namespace loom
