// Basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, MLP.
#pragma once

#include "loom/nn/lora.hpp"
#include "loom/nn/module.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/nn.hpp"

namespace loom::nn {

// y = x W^T + b, W [out, in]; PyTorch's default init U(-1/sqrt(in), 1/sqrt(in)).
// Hosts LoRA adapters (loom/nn/lora.hpp), added to y when active.
class Linear : public Layer, public LoraHost {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  // gelu(forward(x)): one fused pass on a backend whose linear takes the
  // activation (linear_gelu), unless LoRA adapters sit between the two.
  Tensor forward_gelu(const Tensor& x, GeluApprox approx);
  Tensor weight, bias;

  int64_t lora_in_features() const override { return weight.size(1); }
  int64_t lora_out_features() const override { return weight.size(0); }
  Tensor lora_weight() const override { return weight; }

 private:
  void register_lora(std::shared_ptr<LoraAdapters> adapters) override { register_module("lora", std::move(adapters)); }
  std::string type_name() const override { return "Linear"; }
};

// Rows of weight [num, dim], init N(0, std).
class Embedding : public Layer {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, double std = 1.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& ids) override;
  Tensor weight;

 private:
  std::string type_name() const override { return "Embedding"; }
};

// A normalisation layer that can also take the residual add before it in one
// fused pass (loom/ops/nn.hpp residual_layer_norm): {x + residual, norm(x +
// residual)}, as a pre-norm block needs both.
class NormLayer : public Layer {
 public:
  // normed_feeds_product: the normed output is a product's operand (under
  // autocast it then comes out in bf16; loom/ops/nn.hpp).
  virtual ResidualNorm residual_forward(const Tensor& x, const Tensor& residual,
                                        bool normed_feeds_product = false) = 0;
};

// A residual stream whose last add is still pending: the value is stream +
// branch (just stream when branch is undefined). A pre-norm block hands its
// closing add on in this form, so that the next block adds it inside its
// first norm (one fused pass) instead of in a separate add.
struct ResidualStream {
  Tensor stream, branch;
  // stream + branch, added now.
  Tensor resolved() const;
  // norm(stream + branch), the add fused into the norm when one is pending.
  Tensor normed_by(NormLayer& norm) const;
  // {stream + branch, norm(stream + branch)} from one fused pass.
  ResidualNorm resolved_and_normed_by(NormLayer& norm, bool normed_feeds_product = false) const;
};

class LayerNorm : public NormLayer {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  ResidualNorm residual_forward(const Tensor& x, const Tensor& residual, bool normed_feeds_product = false) override;
  Tensor weight, bias;
  int64_t dim;
  double eps;

 private:
  std::string type_name() const override { return "LayerNorm"; }
};

class RMSNorm : public NormLayer {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) override;
  ResidualNorm residual_forward(const Tensor& x, const Tensor& residual, bool normed_feeds_product = false) override;
  Tensor weight;
  int64_t dim;
  double eps;

 private:
  std::string type_name() const override { return "RMSNorm"; }
};

// Active only in training mode; masks come from `gen` (default generator when null).
class Dropout : public Layer {
 public:
  explicit Dropout(double p = 0.1, Generator* gen = nullptr) : p(p), gen_(gen) {}
  Tensor forward(const Tensor& x) override;
  double p;

 private:
  Generator* gen_;
  std::string type_name() const override { return "Dropout"; }
};

enum class Activation { gelu, gelu_tanh, relu, silu };
Tensor activate(const Tensor& x, Activation a);

// fc2(dropout(act(fc1(x)))), hidden = ratio * dim by default.
class MLP : public Layer {
 public:
  MLP(int64_t dim, int64_t hidden, Activation act = Activation::gelu, double dropout = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<Dropout> drop;
  Activation act;

 private:
  std::string type_name() const override { return "MLP"; }
};

}  // namespace loom::nn
