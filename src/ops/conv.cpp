// Convolutions: the backend's convolution entry where it has one that takes
// the call (cuDNN on CUDA; im2col + GEMM as one node on the CPU), otherwise
// composed as im2col +
// one batched GEMM: conv2d(x, w) = w[O, C*KH*KW] . unfold2d(x).
// conv1d is conv2d over a height of 1. A patch stem (kernel = stride, no
// padding) has its own entry, patch_embed: patchify, then one GEMM.
#include <optional>

#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

std::vector<int64_t> pair_of(const std::vector<int64_t>& v, const char* op, const char* what) {
  LOOM_CHECK(v.size() == 1 || v.size() == 2, op, ": ", what, " must have 1 or 2 values, got ", v.size());
  return v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v;
}

// The window of a kernel sliding over x [N, C, H, W], checked.
kernels::Window2d window_over(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                              std::vector<int64_t> padding, const char* op) {
  kernel = pair_of(kernel, op, "kernel");
  stride = pair_of(stride, op, "stride");
  padding = pair_of(padding, op, "padding");
  const kernels::Window2d w{kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]};
  LOOM_CHECK(w.kh > 0 && w.kw > 0 && w.sh > 0 && w.sw > 0 && w.ph >= 0 && w.pw >= 0, op,
             ": kernel and stride must be positive, padding non-negative");
  LOOM_CHECK(x.size(2) + 2 * w.ph >= w.kh && x.size(3) + 2 * w.pw >= w.kw, op, ": kernel ", shape_str(kernel),
             " larger than padded input ", shape_str(x.shape()));
  return w;
}

int64_t out_height(const Tensor& x, const kernels::Window2d& w) { return (x.size(2) + 2 * w.ph - w.kh) / w.sh + 1; }
int64_t out_width(const Tensor& x, const kernels::Window2d& w) { return (x.size(3) + 2 * w.pw - w.kw) / w.sw + 1; }

// conv2d through the backend's convolution entry; nullopt when it has none
// or declines the call (the caller composes).
std::optional<Tensor> fused_conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                                   const kernels::Window2d& win) {
  const kernels::Backend& table = ops::kernels_for(x_in);
  if (table.convolution == nullptr) return std::nullopt;
  if (w_in.device() != x_in.device() || (b_in.defined() && b_in.device() != x_in.device())) return std::nullopt;
  const Tensor x = ops::autocast_product_operand(x_in);
  const Tensor w = ops::autocast_product_operand(w_in);
  const Tensor b = b_in.defined() ? ops::autocast_product_operand(b_in) : Tensor();
  if (w.dtype() != x.dtype() || (b.defined() && b.dtype() != x.dtype()) || !is_floating(x.dtype()))
    return std::nullopt;
  if (x.numel() == 0 || w.numel() == 0) return std::nullopt;
  const Tensor x2 = ops::dense(x), w2 = ops::dense(w), b2 = b.defined() ? ops::dense(b) : Tensor();
  Tensor out = empty({x.size(0), w.size(0), out_height(x, win), out_width(x, win)},
                     TensorOptions(x.dtype()).with_device(x.device()));
  Tensor kept;
  if (!table.convolution(x2, w2, b2, out, win, &kept)) return std::nullopt;

  std::vector<Tensor> inputs = {x, w};
  if (b.defined()) inputs.push_back(b);
  return ops::record("conv2d", out, inputs, {x2, w2, kept}, [win, bias = b.defined()](const BackwardContext& ctx,
                                                                                       const Tensor& g) {
    const Tensor x2 = ctx.saved(0), w2 = ctx.saved(1);
    const TensorOptions on = TensorOptions(x2.dtype()).with_device(x2.device());
    Tensor gx = ctx.needs_grad(0) ? empty(x2.shape(), on) : Tensor();
    Tensor gw = ctx.needs_grad(1) ? empty(w2.shape(), on) : Tensor();
    Tensor gb = bias && ctx.needs_grad(2) ? empty({w2.size(0)}, on) : Tensor();
    ops::kernels_for(x2).convolution_backward(ops::dense(g.to(x2.dtype())), x2, w2, ctx.saved(2), gx, gw, gb, win);
    std::vector<Tensor> grads = {gx, gw};
    if (bias) grads.push_back(gb);
    return grads;
  });
}

}  // namespace

Tensor unfold2d(const Tensor& x_in, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                std::vector<int64_t> padding) {
  check_defined(x_in, "unfold2d", "x");
  LOOM_CHECK(x_in.dim() == 4, "unfold2d: expected input [N, C, H, W], got ", shape_str(x_in.shape()));
  if (is_half(x_in.dtype())) return unfold2d(x_in.to(DType::f32), kernel, stride, padding).to(x_in.dtype());
  ops::check_floating(x_in, "unfold2d");
  const kernels::Window2d w = window_over(x_in, kernel, stride, padding, "unfold2d");
  const int64_t n = x_in.size(0), c = x_in.size(1);
  Tensor x = ops::dense(x_in);
  const auto opts = TensorOptions(x.dtype()).with_device(x.device());
  Tensor cols = empty({n, c * w.kh * w.kw, out_height(x, w) * out_width(x, w)}, opts);
  ops::kernels_for(x).unfold2d(x, cols, w);
  return ops::record("unfold2d", cols, {x_in}, {}, [w, xs = x.shape()](const BackwardContext&, const Tensor& g) {
    Tensor grad = zeros(xs, TensorOptions(g.dtype()).with_device(g.device()));
    ops::kernels_for(g).fold2d(g.contiguous(), grad, w);
    return std::vector<Tensor>{grad};
  });
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding) {
  check_defined(x, "conv2d", "x");
  check_defined(weight, "conv2d", "weight");
  LOOM_CHECK(x.dim() == 4 && weight.dim() == 4 && x.size(1) == weight.size(1), "conv2d: input ", shape_str(x.shape()),
             " ([N, C, H, W]) does not match weight ", shape_str(weight.shape()), " ([O, C, KH, KW])");
  const int64_t out_ch = weight.size(0);
  if (bias.defined())
    LOOM_CHECK(bias.shape() == Shape{out_ch}, "conv2d: bias ", shape_str(bias.shape()), " must be [", out_ch, "]");
  const kernels::Window2d win = window_over(x, {weight.size(2), weight.size(3)}, stride, padding, "conv2d");
  if (std::optional<Tensor> fused = fused_conv2d(x, weight, bias, win)) return *fused;
  Tensor cols = unfold2d(x, {weight.size(2), weight.size(3)}, stride, padding);
  Tensor y = matmul(weight.reshape({out_ch, -1}), cols).reshape({x.size(0), out_ch, out_height(x, win), out_width(x, win)});
  if (bias.defined()) y = add(y, ops::autocast_product_operand(bias).reshape({1, out_ch, 1, 1}));
  return y;
}

Tensor patchify(const Tensor& x, int64_t patch) {
  check_defined(x, "patchify", "x");
  LOOM_CHECK(patch > 0, "patchify: patch must be positive, got ", patch);
  LOOM_CHECK(x.dim() == 4 && x.size(2) % patch == 0 && x.size(3) % patch == 0, "patchify: input ",
             shape_str(x.shape()), " must be [N, C, H, W] with H and W multiples of the patch ", patch);
  const int64_t n = x.size(0), c = x.size(1), rows = x.size(2) / patch, cols = x.size(3) / patch;
  // The permute keeps a patch row's p pixels innermost and contiguous, so
  // the copy moves runs of p elements.
  return x.reshape({n, c, rows, patch, cols, patch})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({n, rows * cols, c * patch * patch});
}

Tensor patch_embed(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "patch_embed", "x");
  check_defined(weight, "patch_embed", "weight");
  LOOM_CHECK(weight.dim() == 4 && weight.size(2) == weight.size(3), "patch_embed: weight ", shape_str(weight.shape()),
             " must be [O, C, p, p] (square patches)");
  const int64_t out_ch = weight.size(0), patch = weight.size(2);
  LOOM_CHECK(x.dim() == 4 && x.size(1) == weight.size(1) && x.size(2) % patch == 0 && x.size(3) % patch == 0,
             "patch_embed: input ", shape_str(x.shape()), " must be [N, C, H, W] with C = ", weight.size(1),
             " and H, W multiples of ", patch, " to match weight ", shape_str(weight.shape()), " ([O, C, p, p])");
  LOOM_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out_ch), "patch_embed: bias ",
             shape_str(bias.defined() ? bias.shape() : Shape{}), " must be [", out_ch, "] to match weight ",
             shape_str(weight.shape()));
  LOOM_CHECK(weight.device() == x.device() && (!bias.defined() || bias.device() == x.device()),
             "patch_embed: input, weight and bias must be on one device");
  // Cast before the reshape: autocast keeps its cached copy for the
  // parameter itself, not for a view of it. The bias is cast with it so that
  // the two reach linear in one dtype and the bias stays in the epilogue.
  const Tensor w = ops::autocast_product_operand(weight).reshape({out_ch, -1});
  const Tensor b = bias.defined() ? ops::autocast_product_operand(bias) : Tensor();
  return linear(patchify(x, patch), w, b);
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding) {
  check_defined(x, "conv1d", "x");
  check_defined(weight, "conv1d", "weight");
  LOOM_CHECK(x.dim() == 3 && weight.dim() == 3 && x.size(1) == weight.size(1), "conv1d: input ", shape_str(x.shape()),
             " ([N, C, L]) does not match weight ", shape_str(weight.shape()), " ([O, C, K])");
  return conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, {1, stride}, {0, padding}).squeeze(2);
}

}  // namespace loom
