// Parameter-efficient fine-tuning besides LoRA (loom/nn/lora.hpp): bottleneck
// adapters (Houlsby et al. 2019), prompt tuning (Lester et al. 2021), and a
// count of what is left to train.
//
// The bottleneck adapter starts as the identity (its up projection is zero).
// Prompt tuning lengthens the sequence by the P virtual tokens; the model's
// outputs at those positions are the caller's to drop (or to read, e.g. as a
// pooled representation). Freeze the base model first (requires_grad_(false)
// on its parameters, or mark_only_lora_trainable with LoRA), then add these
// modules: their parameters are created trainable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "loom/nn/layers.hpp"

namespace loom::nn {

// x + up(act(down(x))), down [dim -> bottleneck], up [bottleneck -> dim].
// down has Linear's default init; up's weight and bias are zero, so the
// adapter is the identity until trained.
class BottleneckAdapter : public Layer {
 public:
  BottleneckAdapter(int64_t dim, int64_t bottleneck, Generator* gen = nullptr, Activation act = Activation::gelu);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> down, up;
  Activation act;

 private:
  std::string type_name() const override { return "BottleneckAdapter"; }
};

// num_virtual_tokens learned embeddings ("prompt" [P, dim], init N(0, 0.02^2))
// placed before the token embeddings.
class PromptTuning : public Layer {
 public:
  PromptTuning(int64_t num_virtual_tokens, int64_t dim, Generator* gen = nullptr);
  // x [B, T, dim] -> [B, P + T, dim], the prompt first.
  Tensor forward(const Tensor& x) override;
  // A bool padding mask [B, T] (true = attend) -> [B, P + T]; the virtual
  // tokens are always attended.
  Tensor extend_mask(const Tensor& mask) const;
  Tensor prompt;
  int64_t num_virtual_tokens, dim;

 private:
  std::string type_name() const override { return "PromptTuning"; }
};

struct TrainableSummary {
  int64_t trainable = 0;  // elements of parameters with requires_grad
  int64_t total = 0;      // elements of all parameters (a shared tensor counts once)
  double share = 0;       // trainable / total, 0 for a model without parameters
  // "trainable 12,288 of 1,234,567 parameters (1.00%)"
  std::string str() const;
};

TrainableSummary trainable_summary(const Module& model);

}  // namespace loom::nn
