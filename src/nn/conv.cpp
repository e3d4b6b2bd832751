#include "loom/nn/conv.hpp"

#include <cmath>
#include <functional>

#include "loom/nn/init.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"

namespace loom::nn {

namespace {
// PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
void conv_init(Tensor& weight, Tensor& bias, const Shape& shape, bool with_bias, Generator* gen,
               const std::function<Tensor(const std::string&, Tensor)>& reg) {
  Tensor w = empty(shape);
  const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(w).first));
  init::uniform_(w, -bound, bound, gen);
  weight = reg("weight", w);
  if (with_bias) {
    Tensor b = empty({shape[0]});
    init::uniform_(b, -bound, bound, gen);
    bias = reg("bias", b);
  }
}
}  // namespace

Conv1d::Conv1d(int64_t in, int64_t out, int64_t kernel, int64_t s, int64_t p, bool with_bias, Generator* gen)
    : stride(s), padding(p) {
  conv_init(weight, bias, {out, in, kernel}, with_bias, gen,
            [this](const std::string& n, Tensor t) { return register_parameter(n, t); });
}

Tensor Conv1d::forward(const Tensor& x) { return conv1d(x, weight, bias, stride, padding); }

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t s, int64_t p, bool with_bias, Generator* gen)
    : stride(s), padding(p) {
  conv_init(weight, bias, {out, in, kernel, kernel}, with_bias, gen,
            [this](const std::string& n, Tensor t) { return register_parameter(n, t); });
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, {stride, stride}, {padding, padding}); }

PatchEmbed::PatchEmbed(int64_t in_channels, int64_t dim, int64_t p, Generator* gen) : patch(p) {
  proj = register_module("proj", std::make_shared<Conv2d>(in_channels, dim, p, p, 0, true, gen));
}

Tensor PatchEmbed::forward(const Tensor& x) {
  LOOM_CHECK(x.dim() == 4 && x.size(2) % patch == 0 && x.size(3) % patch == 0, "PatchEmbed: input ",
             shape_str(x.shape()), " must be [N, C, H, W] with H and W multiples of the patch size ", patch);
  LOOM_CHECK(proj->stride == patch && proj->padding == 0, "PatchEmbed: proj has stride ", proj->stride,
             " and padding ", proj->padding, "; a patch stem needs stride ", patch, " and no padding");
  // patchify and one GEMM, tokens out contiguous: on the CPU as fast as, or
  // faster than, conv2d followed by the transpose into tokens
  // (docs/benchmarks.md, "patch_embed").
  return patch_embed(x, proj->weight, proj->bias);  // [N, L, dim]
}

}  // namespace loom::nn
