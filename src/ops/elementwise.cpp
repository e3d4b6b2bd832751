// Pointwise ops: forward through the kernel table, backward rules beside them.
#include "loom/ops/elementwise.hpp"

#include <cmath>

#include "loom/ops/creation.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

using kernels::Binary;
using kernels::Compare;
using kernels::Unary;
using kernels::UnaryParams;
using ops::BackwardContext;

namespace {

// Forward of a broadcasting binary op; no autograd.
Tensor binary_forward(Binary op, const char* name, const Tensor& a, const Tensor& b) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  ops::check_same_dtype(a, b, name);
  ops::check_same_device(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, TensorOptions(a.dtype()).with_device(a.device()));
  ops::kernels_for(a).binary(op, ops::broadcast_view(a, shape), ops::broadcast_view(b, shape), out);
  return out;
}

Tensor scalar_like(const Tensor& t, double value) {
  return full({}, value, TensorOptions(t.dtype()).with_device(t.device()));
}

Tensor unary_forward(Unary op, const char* name, const Tensor& x, const UnaryParams& p) {
  check_defined(x, name, "x");
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).unary(op, x, out, p);
  return out;
}

// Which of (x, y) a unary derivative reads.
enum class Uses { none, x, y };

Uses derivative_uses(Unary op) {
  switch (op) {
    case Unary::neg: return Uses::none;
    case Unary::exp:
    case Unary::sqrt:
    case Unary::rsqrt:
    case Unary::tanh:
    case Unary::sigmoid: return Uses::y;
    default: return Uses::x;
  }
}

Tensor unary_op(Unary op, const char* name, const Tensor& x, UnaryParams p = {}) {
  Tensor out = unary_forward(op, name, x, p);
  const Uses uses = derivative_uses(op);
  std::vector<Tensor> saved;
  if (uses == Uses::x) saved = {x};
  if (uses == Uses::y) saved = {out};
  return ops::record(name, out, {x}, saved, [op, p, uses](const BackwardContext& ctx, const Tensor& g) {
    Tensor arg = uses == Uses::none ? g : ctx.saved(0);
    Tensor grad_in = empty(g.shape(), TensorOptions(g.dtype()).with_device(g.device()));
    ops::kernels_for(g).unary_backward(op, g, arg, arg, grad_in, p);
    return std::vector<Tensor>{grad_in};
  });
}

Tensor compare_op(Compare op, const char* name, const Tensor& a, const Tensor& b) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  ops::check_same_dtype(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, TensorOptions(DType::boolean).with_device(a.device()));
  ops::kernels_for(a).compare(op, ops::broadcast_view(a, shape), ops::broadcast_view(b, shape), out);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  if (auto p = ops::promoted_pair(a, b)) return add(p->first, p->second);
  Tensor out = binary_forward(Binary::add, "add", a, b);
  return ops::record("add", out, {a, b}, {},
                     [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx, const Tensor& g) {
                       // A broadcast operand's sum is a pass over g: skipped for a constant (a mask's bias).
                       return std::vector<Tensor>{ctx.needs_grad(0) ? sum_to(g, sa) : Tensor(),
                                                  ctx.needs_grad(1) ? sum_to(g, sb) : Tensor()};
                     });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  if (auto p = ops::promoted_pair(a, b)) return sub(p->first, p->second);
  Tensor out = binary_forward(Binary::sub, "sub", a, b);
  return ops::record("sub", out, {a, b}, {},
                     [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx, const Tensor& g) {
                       return std::vector<Tensor>{sum_to(g, sa), ctx.needs_grad(1) ? sum_to(neg(g), sb) : Tensor()};
                     });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  if (auto p = ops::promoted_pair(a, b)) return mul(p->first, p->second);
  Tensor out = binary_forward(Binary::mul, "mul", a, b);
  return ops::record("mul", out, {a, b}, {a, b},
                     [](const BackwardContext& ctx, const Tensor& g) {
                       Tensor a = ctx.saved(0), b = ctx.saved(1);
                       return std::vector<Tensor>{ctx.needs_grad(0) ? sum_to(mul(g, b), a.shape()) : Tensor(),
                                                  ctx.needs_grad(1) ? sum_to(mul(g, a), b.shape()) : Tensor()};
                     });
}

Tensor div(const Tensor& a, const Tensor& b) {
  if (auto p = ops::promoted_pair(a, b)) return div(p->first, p->second);
  Tensor out = binary_forward(Binary::div, "div", a, b);
  return ops::record("div", out, {a, b}, {a, b},
                     [](const BackwardContext& ctx, const Tensor& g) {
                       Tensor a = ctx.saved(0), b = ctx.saved(1);
                       Tensor ga = ctx.needs_grad(0) ? sum_to(div(g, b), a.shape()) : Tensor();
                       Tensor gb = ctx.needs_grad(1) ? sum_to(neg(div(mul(g, a), mul(b, b))), b.shape()) : Tensor();
                       return std::vector<Tensor>{ga, gb};
                     });
}

Tensor pow(const Tensor& a, const Tensor& e) {
  if (auto p = ops::promoted_pair(a, e)) return pow(p->first, p->second);
  Tensor out = binary_forward(Binary::pow, "pow", a, e);
  return ops::record("pow", out, {a, e}, {a, e, out}, [](const BackwardContext& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), e = ctx.saved(1), y = ctx.saved(2);
    Tensor ga, ge;
    if (ctx.needs_grad(0)) ga = sum_to(mul(g, mul(e, pow(a, sub(e, 1.0)))), a.shape());
    if (ctx.needs_grad(1)) ge = sum_to(mul(g, mul(y, log(a))), e.shape());
    return std::vector<Tensor>{ga, ge};
  });
}

// maximum/minimum: the gradient goes to the selected operand, split evenly on ties.

Tensor maximum(const Tensor& a, const Tensor& b) {
  if (auto p = ops::promoted_pair(a, b)) return maximum(p->first, p->second);
  Tensor out = binary_forward(Binary::maximum, "maximum", a, b);
  return ops::record("maximum", out, {a, b}, {a, b}, [](const BackwardContext& ctx, const Tensor& g) {
    Tensor a = ctx.saved(0), b = ctx.saved(1);
    Tensor zero = scalar_like(g, 0.0);
    Tensor tie = mul(g, 0.5);
    Tensor ga = where(gt(a, b), g, where(eq(a, b), tie, zero));
    Tensor gb = where(lt(a, b), g, where(eq(a, b), tie, zero));
    return std::vector<Tensor>{sum_to(ga, a.shape()), sum_to(gb, b.shape())};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) { return neg(maximum(neg(a), neg(b))); }

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }

Tensor pow(const Tensor& a, double exponent) {
  UnaryParams p;
  p.exponent = exponent;
  return unary_op(Unary::pow_scalar, "pow", a, p);
}

Tensor neg(const Tensor& x) { return unary_op(Unary::neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary_op(Unary::exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_op(Unary::log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary_op(Unary::sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary_op(Unary::rsqrt, "rsqrt", x); }
Tensor abs(const Tensor& x) { return unary_op(Unary::abs, "abs", x); }
Tensor tanh(const Tensor& x) { return unary_op(Unary::tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary_op(Unary::sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary_op(Unary::relu, "relu", x); }
Tensor silu(const Tensor& x) { return unary_op(Unary::silu, "silu", x); }
Tensor gelu(const Tensor& x, GeluApprox approx) {
  return unary_op(approx == GeluApprox::tanh ? Unary::gelu_tanh : Unary::gelu_erf, "gelu", x);
}

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  UnaryParams p;
  p.has_lo = min.has_value();
  p.has_hi = max.has_value();
  p.lo = min.value_or(0);
  p.hi = max.value_or(0);
  return unary_op(Unary::clamp, "clamp", x, p);
}

Tensor eq(const Tensor& a, const Tensor& b) { return compare_op(Compare::eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_op(Compare::ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_op(Compare::lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_op(Compare::le, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_op(Compare::gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_op(Compare::ge, "ge", a, b); }

Tensor logical_not(const Tensor& mask) {
  LOOM_CHECK(mask.dtype() == DType::boolean, "logical_not: expected a bool tensor, got ", dtype_name(mask.dtype()));
  return eq(mask, full({}, 0.0, TensorOptions(DType::boolean).with_device(mask.device())));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  check_defined(a, "where", "a");
  check_defined(b, "where", "b");
  LOOM_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", dtype_name(cond.dtype()), " ",
             shape_str(cond.shape()));
  ops::check_same_dtype(a, b, "where");
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = empty(shape, TensorOptions(a.dtype()).with_device(a.device()));
  ops::kernels_for(a).where(ops::broadcast_view(cond, shape), ops::broadcast_view(a, shape),
                            ops::broadcast_view(b, shape), out);
  return ops::record("where", out, {a, b}, {cond},
                     [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx, const Tensor& g) {
                       Tensor c = ctx.saved(0);
                       Tensor zero = scalar_like(g, 0.0);
                       Tensor ga = ctx.needs_grad(0) ? sum_to(where(c, g, zero), sa) : Tensor();
                       Tensor gb = ctx.needs_grad(1) ? sum_to(where(c, zero, g), sb) : Tensor();
                       return std::vector<Tensor>{ga, gb};
                     });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined(x, "masked_fill", "x");
  check_defined(mask, "masked_fill", "mask");
  LOOM_CHECK(mask.dtype() == DType::boolean, "masked_fill: mask must be bool, got ", dtype_name(mask.dtype()));
  Tensor out = where(mask, scalar_like(x, value), x);
  LOOM_CHECK(out.shape() == x.shape(), "masked_fill: mask ", shape_str(mask.shape()), " does not broadcast to ",
             shape_str(x.shape()));
  return out;
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined(x, "to", "x");
  if (x.dtype() == dtype) return x;
  Tensor out = empty(x.shape(), TensorOptions(dtype).with_device(x.device()));
  ops::kernels_for(x).copy(x, out);
  if (!is_floating(dtype) || !is_floating(x.dtype())) return out;
  return ops::record_cast(out, x);
}

Tensor ops::record_cast(const Tensor& out, const Tensor& x) {
  return ops::record("to", out, {x}, {}, [from = x.dtype()](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{to_dtype(g, from)};
  });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return add(neg(b), a); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator-(const Tensor& x) { return neg(x); }

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (broadcast_shapes(a.shape(), b.shape(), "allclose") != a.shape()) return false;
  const Shape shape = a.shape();
  const auto av = a.to_vector<double>();
  const auto bv = ops::broadcast_view(b, shape).contiguous().to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) {
    if (std::isnan(av[i]) != std::isnan(bv[i])) return false;
    if (std::isnan(av[i])) continue;
    if (std::abs(av[i] - bv[i]) > atol + rtol * std::abs(bv[i])) return false;
  }
  return true;
}

}  // namespace loom
