// matmul with NumPy semantics over one batched GEMM kernel. Broadcast batch
// dims become stride-0 views (no copies) whenever they can be merged into one.
// linear takes the backend's fused entry where there is one (the bias, and
// GELU for linear_gelu, applied as the product is written: cuBLASLt's
// epilogues on CUDA); otherwise it is composed from matmul, add and gelu.
#include "loom/ops/linalg.hpp"
#include "loom/autograd/grad_mode.hpp"

#include <optional>

#include "loom/ops/elementwise.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"
#include "loom/ops/autocast.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

// View t ([batch..., r, c]) as [B, r, c], merging batch dims; copies only
// when the batch strides cannot be merged.
Tensor as_batched(const Tensor& t, int64_t batch) {
  const int64_t n = t.dim();
  int64_t stride = 0;
  bool mergeable = true;
  int64_t expected = -1;
  for (int64_t i = n - 3; i >= 0; --i) {
    if (t.size(i) == 1) continue;
    if (expected == -1) {
      stride = t.stride(i);
    } else if (t.stride(i) != expected) {
      mergeable = false;
      break;
    }
    expected = t.stride(i) * t.size(i);
  }
  if (!mergeable) {
    Tensor c = t.contiguous();
    return make_view(c, {batch, t.size(n - 2), t.size(n - 1)}, {t.size(n - 2) * t.size(n - 1), c.stride(n - 2), c.stride(n - 1)},
                     c.offset());
  }
  return make_view(t, {batch, t.size(n - 2), t.size(n - 1)}, {stride, t.stride(n - 2), t.stride(n - 1)}, t.offset());
}

// a [..., M, K] x b [..., K, N], both at least 2-D.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  LOOM_CHECK(b.size(-2) == k, "matmul: inner dimensions differ, ", shape_str(a.shape()), " x ", shape_str(b.shape()));
  const Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  const int64_t nb = numel(batch);
  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  Tensor out = empty(out_shape, TensorOptions(a.dtype()).with_device(a.device()));
  Tensor out3 = make_view(out, {nb, m, n}, {m * n, n, 1}, 0);
  ops::kernels_for(a).gemm(as_batched(ops::broadcast_view(a, a_full), nb), as_batched(ops::broadcast_view(b, b_full), nb),
                           out3);
  return ops::record("matmul", out, {a, b}, {a, b}, [](const BackwardContext& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    Tensor ga = ctx.needs_grad(0) ? sum_to(matmul_nd(g, b.transpose(-1, -2)), a.shape()) : Tensor();
    Tensor gb = ctx.needs_grad(1) ? sum_to(matmul_nd(a.transpose(-1, -2), g), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  if (autocast_enabled() && (a.dtype() == DType::f32 || b.dtype() == DType::f32))
    return matmul(ops::autocast_product_operand(a), ops::autocast_product_operand(b));
  ops::check_same_dtype(a, b, "matmul");
  ops::check_same_device(a, b, "matmul");
  LOOM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least 1 dim, got ", shape_str(a.shape()),
             " x ", shape_str(b.shape()));
  ops::check_floating(a, "matmul");
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a.dim() > 2 && b.dim() == 2 && a.is_contiguous()) {
    // A dense [..., M, K] x [K, N] is one [(...)M, K] x [K, N] product: one
    // large GEMM instead of a batch of small ones, and b's gradient comes out
    // of one product too, not a per-batch [..., K, N] stack summed afterwards.
    // (A strided a keeps the batched path, which reads it in place.)
    LOOM_CHECK(b.size(0) == a.size(-1), "matmul: inner dimensions differ, ", shape_str(a.shape()), " x ",
               shape_str(b.shape()));
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    const int64_t rows = numel(out_shape);
    out_shape.push_back(b.size(1));
    return matmul_nd(a.reshape({rows, a.size(-1)}), b).reshape(out_shape);
  }
  Tensor out = matmul_nd(a_vec ? a.unsqueeze(0) : a, b_vec ? b.unsqueeze(-1) : b);
  if (b_vec) out = out.squeeze(-1);
  if (a_vec) out = out.squeeze(-2 + (b_vec ? 1 : 0));
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_defined(a, "bmm", "a");
  check_defined(b, "bmm", "b");
  LOOM_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
             "bmm: expected [B, M, K] x [B, K, N], got ", shape_str(a.shape()), " x ", shape_str(b.shape()));
  return matmul(a, b);
}

namespace {

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const char* op) {
  check_defined(x, op, "x");
  check_defined(weight, op, "weight");
  LOOM_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), op, ": input ",
             shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()), " ([out, in])");
  if (bias.defined())
    LOOM_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), op, ": bias ", shape_str(bias.shape()),
               " does not match weight ", shape_str(weight.shape()));
}

// The parameter gradients of a fused linear, in `param_dtype` (f32 for the
// master weights of a half product): the backend's one-pass entry writing
// that dtype when it takes the call, else writing the product's and cast,
// else a product and a column sum.
void linear_parameter_grads(const Tensor& g2, const Tensor& x2, DType param_dtype, Tensor& gw, Tensor& gb) {
  const kernels::Backend& table = ops::kernels_for(g2);
  const auto entry = [&](DType t) {
    if (table.linear_weight_grad == nullptr) return false;
    const TensorOptions on = TensorOptions(t).with_device(g2.device());
    gw = empty({g2.size(1), x2.size(1)}, on);
    gb = empty({g2.size(1)}, on);
    return table.linear_weight_grad(g2, x2, gw, gb);
  };
  if (!entry(param_dtype) && (param_dtype == g2.dtype() || !entry(g2.dtype()))) {
    gw = matmul(g2.t(), x2);
    gb = sum(g2, {0});
  }
  gw = gw.to(param_dtype);
  gb = gb.to(param_dtype);
}

// x [..., K] . weight[N, K]^T + bias, with the epilogue, through the backend's
// fused entry; nullopt when it has none or declines (then the caller composes).
std::optional<Tensor> fused_linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                                   kernels::LinearEpilogue epilogue) {
  const kernels::Backend& table = ops::kernels_for(x_in);
  if (table.linear == nullptr || !b_in.defined()) return std::nullopt;
  if (w_in.device() != x_in.device() || b_in.device() != x_in.device()) return std::nullopt;
  if (b_in.dtype() != w_in.dtype()) return std::nullopt;  // the gradients come back in one dtype
  const Tensor x = ops::autocast_product_operand(x_in);
  // The weight and bias are cast outside the graph: the node takes w_in and
  // b_in as its inputs and hands back their gradients in their own dtype (an
  // f32 master weight's straight from the product under autocast: no cast
  // node each way).
  Tensor w, b;
  {
    NoGradGuard outside_the_graph;
    w = ops::autocast_product_operand(w_in);
    b = ops::autocast_product_operand(b_in);
  }
  if (w.dtype() != x.dtype() || b.dtype() != x.dtype() || !is_floating(x.dtype())) return std::nullopt;
  const int64_t k = x.size(-1), n = w.size(0);
  if (k == 0 || n == 0 || x.numel() == 0) return std::nullopt;
  const int64_t m = x.numel() / k;
  const bool gelu = epilogue == kernels::LinearEpilogue::bias_gelu_tanh;
  const Tensor x2 = ops::dense(x).reshape({m, k}), w2 = ops::dense(w), b2 = ops::dense(b);
  const TensorOptions on = TensorOptions(x.dtype()).with_device(x.device());
  Tensor out = empty({m, n}, on);
  Tensor pre = gelu ? empty({m, n}, on) : Tensor();
  if (!table.linear(x2, w2, b2, epilogue, out, pre)) return std::nullopt;

  Shape out_shape = x.shape();
  out_shape.back() = n;
  return ops::record(gelu ? "linear_gelu" : "linear", out.reshape(out_shape), {x, w_in, b_in}, {x2, w2, pre},
                     [gelu, xs = x.shape(), param_dtype = w_in.dtype()](const BackwardContext& ctx, const Tensor& g) {
                       const Tensor x2 = ctx.saved(0), w2 = ctx.saved(1);
                       Tensor g2 = ops::dense(g.to(x2.dtype())).reshape({x2.size(0), w2.size(0)});
                       if (gelu) {
                         const Tensor pre = ctx.saved(2);
                         Tensor g_pre = empty(pre.shape(), TensorOptions(pre.dtype()).with_device(pre.device()));
                         ops::kernels_for(pre).unary_backward(kernels::Unary::gelu_tanh, g2, pre, pre, g_pre, {});
                         g2 = g_pre;
                       }
                       Tensor gx = ctx.needs_grad(0) ? matmul(g2, w2).reshape(xs) : Tensor();
                       Tensor gw, gb;
                       if (ctx.needs_grad(1) || ctx.needs_grad(2))
                         linear_parameter_grads(g2, x2, param_dtype, gw, gb);
                       return std::vector<Tensor>{gx, gw, gb};
                     });
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias, "linear");
  if (std::optional<Tensor> fused = fused_linear(x, weight, bias, kernels::LinearEpilogue::bias)) return *fused;
  // The weight is cast before its transpose: autocast caches a parameter's
  // cast, not a view's.
  Tensor y = matmul(x, ops::autocast_product_operand(weight).t());
  // under autocast the output stays in the product's dtype
  return bias.defined() ? add(y, ops::autocast_product_operand(bias)) : y;
}

Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, GeluApprox approx) {
  check_linear(x, weight, bias, "linear_gelu");
  if (approx == GeluApprox::tanh)
    if (std::optional<Tensor> fused = fused_linear(x, weight, bias, kernels::LinearEpilogue::bias_gelu_tanh))
      return *fused;
  return gelu(linear(x, weight, bias), approx);
}

}  // namespace loom
