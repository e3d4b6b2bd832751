// Convolutions as im2col + one batched GEMM: conv2d(x, w) = w[O, C*KH*KW] . unfold2d(x).
// conv1d is conv2d over a height of 1.
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
}  // namespace

Tensor unfold2d(const Tensor& x_in, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                std::vector<int64_t> padding) {
  check_defined(x_in, "unfold2d", "x");
  LOOM_CHECK(x_in.dim() == 4, "unfold2d: expected input [N, C, H, W], got ", shape_str(x_in.shape()));
  if (is_half(x_in.dtype())) return unfold2d(x_in.to(DType::f32), kernel, stride, padding).to(x_in.dtype());
  ops::check_floating(x_in, "unfold2d");
  kernel = pair_of(kernel, "unfold2d", "kernel");
  stride = pair_of(stride, "unfold2d", "stride");
  padding = pair_of(padding, "unfold2d", "padding");
  const kernels::Window2d w{kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]};
  LOOM_CHECK(w.kh > 0 && w.kw > 0 && w.sh > 0 && w.sw > 0 && w.ph >= 0 && w.pw >= 0,
             "unfold2d: kernel and stride must be positive, padding non-negative");
  const int64_t n = x_in.size(0), c = x_in.size(1), h = x_in.size(2), wd = x_in.size(3);
  LOOM_CHECK(h + 2 * w.ph >= w.kh && wd + 2 * w.pw >= w.kw, "unfold2d: kernel ", shape_str(kernel),
             " larger than padded input ", shape_str(x_in.shape()));
  const int64_t oh = (h + 2 * w.ph - w.kh) / w.sh + 1, ow = (wd + 2 * w.pw - w.kw) / w.sw + 1;
  Tensor x = x_in.contiguous().detach();
  const auto opts = TensorOptions(x.dtype()).with_device(x.device());
  Tensor cols = empty({n, c * w.kh * w.kw, oh * ow}, opts);
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
  Tensor cols = unfold2d(x, {weight.size(2), weight.size(3)}, stride, padding);
  const auto st = pair_of(stride, "conv2d", "stride"), pd = pair_of(padding, "conv2d", "padding");
  const int64_t oh = (x.size(2) + 2 * pd[0] - weight.size(2)) / st[0] + 1;
  const int64_t ow = (x.size(3) + 2 * pd[1] - weight.size(3)) / st[1] + 1;
  Tensor y = matmul(weight.reshape({out_ch, -1}), cols).reshape({x.size(0), out_ch, oh, ow});
  if (bias.defined()) {
    LOOM_CHECK(bias.shape() == Shape{out_ch}, "conv2d: bias ", shape_str(bias.shape()), " must be [", out_ch, "]");
    y = add(y, ops::autocast_product_operand(bias).reshape({1, out_ch, 1, 1}));
  }
  return y;
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding) {
  check_defined(x, "conv1d", "x");
  check_defined(weight, "conv1d", "weight");
  LOOM_CHECK(x.dim() == 3 && weight.dim() == 3 && x.size(1) == weight.size(1), "conv1d: input ", shape_str(x.shape()),
             " ([N, C, L]) does not match weight ", shape_str(weight.shape()), " ([O, C, K])");
  return conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, {1, stride}, {0, padding}).squeeze(2);
}

}  // namespace loom
