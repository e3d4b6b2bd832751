// Reductions. Every reduction moves the reduced dims to the end (a view) and
// runs the kernel over [outer, r, 1]; a single-dim reduction of a contiguous
// tensor runs in place as [outer, r, inner].
#include "loom/ops/reduction.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

using kernels::Reduce;
using ops::BackwardContext;

namespace {

struct ReducePlan {
  std::vector<bool> reduced;  // per dim of x
  Shape keep_shape;           // x's shape with reduced dims set to 1
  Shape out_shape;            // keep_shape, or with reduced dims removed
  int64_t count = 1;          // elements reduced into each output
};

ReducePlan plan(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  ReducePlan p;
  const int64_t n = x.dim();
  p.reduced.assign(static_cast<size_t>(n), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, n, op);
    LOOM_CHECK(!p.reduced[w], op, ": dim ", d, " repeated in the dims to reduce");
    p.reduced[w] = true;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (p.reduced[i]) {
      p.count *= x.size(i);
      p.keep_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.keep_shape.push_back(x.size(i));
      p.out_shape.push_back(x.size(i));
    }
  }
  return p;
}

// Runs a kernel reduction; result has p.keep_shape.
Tensor reduce_raw(Reduce op, const Tensor& x, const ReducePlan& p) {
  Tensor src = x.detach();
  int64_t outer, r, inner;
  const int64_t nreduced = std::count(p.reduced.begin(), p.reduced.end(), true);
  const auto first = std::find(p.reduced.begin(), p.reduced.end(), true) - p.reduced.begin();
  // Reduced dims that are consecutive in a contiguous tensor are one middle axis.
  const bool consecutive = std::all_of(p.reduced.begin() + first, p.reduced.begin() + first + nreduced,
                                       [](bool b) { return b; });
  if (consecutive && src.is_contiguous()) {
    outer = 1, r = 1, inner = 1;
    for (int64_t i = 0; i < x.dim(); ++i) {
      if (i < first) outer *= x.size(i);
      else if (i < first + nreduced) r *= x.size(i);
      else inner *= x.size(i);
    }
  } else {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < x.dim(); ++i)
      if (!p.reduced[i]) order.push_back(i);
    for (int64_t i = 0; i < x.dim(); ++i)
      if (p.reduced[i]) order.push_back(i);
    NoGradGuard guard;
    src = permute(src, order).contiguous();
    r = p.count;
    outer = r == 0 ? numel(p.keep_shape) : src.numel() / std::max<int64_t>(r, 1);
    inner = 1;
  }
  Tensor out = empty(p.keep_shape, TensorOptions(op == Reduce::argmax ? DType::i64 : x.dtype()).with_device(x.device()));
  if (r == 0) {
    LOOM_CHECK(op == Reduce::sum, "max: cannot reduce over an empty dim of ", shape_str(x.shape()));
    ops::kernels_for(x).fill(out, 0.0);
    return out;
  }
  ops::kernels_for(x).reduce(op, src, outer, r, inner, out);
  return out;
}

// The floating dtype a reduction computes in.
DType reduce_dtype(DType t) { return t == DType::f64 ? DType::f64 : (is_floating(t) ? DType::f32 : DType::f64); }

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "sum", "x");
  if (x.dtype() != reduce_dtype(x.dtype())) {
    Tensor s = sum(x.to(reduce_dtype(x.dtype())), dims, keepdim);
    return s.to(is_floating(x.dtype()) ? x.dtype() : DType::i64);
  }
  const ReducePlan p = plan(x, dims, keepdim, "sum");
  Tensor out = reduce_raw(Reduce::sum, x, p).view(p.out_shape);
  return ops::record("sum", out, {x}, {},
                     [xs = x.shape(), ks = p.keep_shape](const BackwardContext&, const Tensor& g) {
                       return std::vector<Tensor>{expand(g.reshape(ks), xs)};
                     });
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ops::check_floating(x, "mean");
  const ReducePlan p = plan(x, dims, keepdim, "mean");
  return div(sum(x, dims, keepdim), static_cast<double>(p.count));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  ops::check_floating(x, "var");
  const ReducePlan p = plan(x, dims, keepdim, "var");
  Tensor centered = sub(x, mean(x, dims, true));
  return div(sum(mul(centered, centered), dims, keepdim), static_cast<double>(p.count - correction));
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "amax", "x");
  if (is_half(x.dtype())) return amax(x.to(DType::f32), dims, keepdim).to(x.dtype());
  ops::check_floating(x, "amax");
  const ReducePlan p = plan(x, dims, keepdim, "amax");
  Tensor kept = reduce_raw(Reduce::max, x, p);
  Tensor out = kept.view(p.out_shape);
  return ops::record("amax", out, {x}, {x, kept},
                     [ks = p.keep_shape, dims, keepdim](const BackwardContext& ctx, const Tensor& g) {
                       Tensor x = ctx.saved(0), m = ctx.saved(1);
                       Tensor hit = eq(x, m);
                       Tensor count = sum(hit.to(g.dtype()), dims, true);
                       Tensor share = div(g.reshape(ks), count);
                       return std::vector<Tensor>{where(hit, share, zeros({}, TensorOptions(g.dtype()).with_device(g.device())))};
                     });
}

Tensor amax(const Tensor& x) { return amax(x, {}, false); }

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  check_defined(x, "max", "x");
  if (is_half(x.dtype())) {
    auto [v, i] = max(x.to(DType::f32), dim, keepdim);
    return {v.to(x.dtype()), i};
  }
  ops::check_floating(x, "max");
  const int64_t d = wrap_dim(dim, x.dim(), "max");
  const ReducePlan p = plan(x, {d}, keepdim, "max");
  Tensor idx_kept = reduce_raw(Reduce::argmax, x, p);
  Tensor values = reduce_raw(Reduce::max, x, p).view(p.out_shape);
  values = ops::record("max", values, {x}, {idx_kept},
                       [xs = x.shape(), ks = p.keep_shape, d](const BackwardContext& ctx, const Tensor& g) {
                         Tensor idx = ctx.saved(0);
                         return std::vector<Tensor>{
                             scatter(zeros(xs, TensorOptions(g.dtype()).with_device(g.device())), d, idx, g.reshape(ks))};
                       });
  return {values, idx_kept.view(p.out_shape)};
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_defined(x, "argmax", "x");
  if (!is_floating(x.dtype()) || is_half(x.dtype())) return argmax(x.to(reduce_dtype(x.dtype())), dim, keepdim);
  const int64_t d = wrap_dim(dim, x.dim(), "argmax");
  const ReducePlan p = plan(x, {d}, keepdim, "argmax");
  return reduce_raw(Reduce::argmax, x, p).view(p.out_shape);
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  LOOM_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(grad.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[i - lead] == 1 && grad.size(i) != 1) dims.push_back(i);
  }
  Tensor s = dims.empty() ? grad : sum(grad, dims, true);
  return s.reshape(shape);
}

}  // namespace loom
