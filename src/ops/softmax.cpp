// softmax and log_softmax along a dim, backward from the saved output.
#include "loom/ops/elementwise.hpp"
#include "loom/ops/nn.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

Tensor softmax_impl(const Tensor& x_in, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(x_in, name, "x");
  if (is_half(x_in.dtype())) return softmax_impl(x_in.to(DType::f32), dim, log).to(x_in.dtype());
  ops::check_floating(x_in, name);
  const int64_t d = wrap_dim(dim, x_in.dim(), name);
  Tensor x = x_in.contiguous().detach();
  const auto s = ops::split_at(x.shape(), x.dim() == 0 ? 0 : d);
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).softmax(x, out, s.outer, s.r, s.inner, log);
  return ops::record(name, out, {x_in}, {out}, [s, log](const BackwardContext& ctx, const Tensor& g) {
    Tensor y = ctx.saved(0);
    Tensor gc = g.contiguous();
    Tensor grad_in = empty(y.shape(), TensorOptions(y.dtype()).with_device(y.device()));
    ops::kernels_for(y).softmax_backward(gc, y, grad_in, s.outer, s.r, s.inner, log);
    return std::vector<Tensor>{grad_in};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(ops::autocast_to_f32(x), dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(ops::autocast_to_f32(x), dim, true); }

}  // namespace loom
