// matmul with NumPy semantics over one batched GEMM kernel. Broadcast batch
// dims become stride-0 views (no copies) whenever they can be merged into one.
#include "loom/ops/linalg.hpp"

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

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "linear", "x");
  check_defined(weight, "linear", "weight");
  LOOM_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ",
             shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()), " ([out, in])");
  Tensor y = matmul(x, weight.t());
  if (bias.defined()) {
    LOOM_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias ", shape_str(bias.shape()),
               " does not match weight ", shape_str(weight.shape()));
    y = add(y, ops::autocast_product_operand(bias));  // under autocast the output stays in its dtype
  }
  return y;
}

}  // namespace loom
