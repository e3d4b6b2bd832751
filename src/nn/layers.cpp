#include "loom/nn/layers.hpp"

#include <cmath>

#include "loom/nn/init.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"

namespace loom::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator* gen) {
  LOOM_CHECK(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got ", in_features, " -> ",
             out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  Tensor w = empty({out_features, in_features});
  init::uniform_(w, -bound, bound, gen);
  weight = register_parameter("weight", w);
  if (with_bias) {
    Tensor b = empty({out_features});
    init::uniform_(b, -bound, bound, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) { return add_lora(linear(x, weight, bias), x); }

Tensor Linear::forward_gelu(const Tensor& x, GeluApprox approx) {
  if (lora_adapters() != nullptr) return gelu(forward(x), approx);
  return linear_gelu(x, weight, bias, approx);
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim, double std, Generator* gen) {
  Tensor w = empty({num_embeddings, dim});
  init::normal_(w, 0.0, std, gen);
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

LayerNorm::LayerNorm(int64_t d, double e, bool affine) : dim(d), eps(e) {
  if (affine) {
    weight = register_parameter("weight", ones({d}));
    bias = register_parameter("bias", zeros({d}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, {dim}, weight, bias, eps); }

ResidualNorm LayerNorm::residual_forward(const Tensor& x, const Tensor& residual, bool normed_feeds_product) {
  return residual_layer_norm(x, residual, {dim}, weight, bias, eps, normed_feeds_product);
}

RMSNorm::RMSNorm(int64_t d, double e) : dim(d), eps(e) { weight = register_parameter("weight", ones({d})); }

Tensor RMSNorm::forward(const Tensor& x) { return rms_norm(x, {dim}, weight, eps); }

ResidualNorm RMSNorm::residual_forward(const Tensor& x, const Tensor& residual, bool normed_feeds_product) {
  return residual_rms_norm(x, residual, {dim}, weight, eps, normed_feeds_product);
}

Tensor ResidualStream::resolved() const { return branch.defined() ? add(stream, branch) : stream; }

ResidualNorm ResidualStream::resolved_and_normed_by(NormLayer& norm, bool normed_feeds_product) const {
  if (branch.defined()) return norm.residual_forward(stream, branch, normed_feeds_product);
  return {stream, norm.forward(stream)};
}

Tensor ResidualStream::normed_by(NormLayer& norm) const { return resolved_and_normed_by(norm).normed; }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), gen_); }

Tensor activate(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::gelu: return gelu(x);
    case Activation::gelu_tanh: return gelu(x, GeluApprox::tanh);
    case Activation::relu: return relu(x);
    case Activation::silu: return silu(x);
  }
  return x;
}

MLP::MLP(int64_t dim, int64_t hidden, Activation a, double p, Generator* gen) : act(a) {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden, true, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim, true, gen));
  drop = register_module("drop", std::make_shared<Dropout>(p, gen));
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h;
  switch (act) {
    case Activation::gelu: h = fc1->forward_gelu(x, GeluApprox::none); break;
    case Activation::gelu_tanh: h = fc1->forward_gelu(x, GeluApprox::tanh); break;
    default: h = activate(fc1->forward(x), act);
  }
  return fc2->forward(drop->forward(h));
}

}  // namespace loom::nn
