// Bottleneck adapters, prompt tuning and the trainable-parameter summary
// (see loom/nn/peft.hpp).
#include "loom/nn/peft.hpp"

#include <cstdio>
#include <set>

#include "loom/nn/init.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/shape.hpp"

namespace loom::nn {

namespace {

// 1234567 -> "1,234,567"
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

BottleneckAdapter::BottleneckAdapter(int64_t dim, int64_t bottleneck, Generator* gen, Activation a) : act(a) {
  LOOM_CHECK(dim > 0 && bottleneck > 0, "BottleneckAdapter: dim and bottleneck must be positive, got ", dim, " and ",
             bottleneck);
  down = register_module("down", std::make_shared<Linear>(dim, bottleneck, true, gen));
  up = register_module("up", std::make_shared<Linear>(bottleneck, dim, true, gen));
  init::zeros_(up->weight);
  init::zeros_(up->bias);
}

Tensor BottleneckAdapter::forward(const Tensor& x) { return add(x, up->forward(activate(down->forward(x), act))); }

PromptTuning::PromptTuning(int64_t p, int64_t d, Generator* gen) : num_virtual_tokens(p), dim(d) {
  LOOM_CHECK(p > 0 && d > 0, "PromptTuning: num_virtual_tokens and dim must be positive, got ", p, " and ", d);
  Tensor w = empty({p, d});
  init::normal_(w, 0.0, 0.02, gen);
  prompt = register_parameter("prompt", w);
}

Tensor PromptTuning::forward(const Tensor& x) {
  check_defined(x, "PromptTuning", "x");
  LOOM_CHECK(x.dim() == 3 && x.size(2) == dim, "PromptTuning: x must be [B, T, ", dim, "], got ", shape_str(x.shape()));
  LOOM_CHECK(x.dtype() == prompt.dtype(), "PromptTuning: x has dtype ", dtype_name(x.dtype()), ", the prompt ",
             dtype_name(prompt.dtype()));
  return cat({prompt.unsqueeze(0).expand({x.size(0), num_virtual_tokens, dim}), x}, 1);
}

Tensor PromptTuning::extend_mask(const Tensor& mask) const {
  check_defined(mask, "PromptTuning::extend_mask", "mask");
  LOOM_CHECK(mask.dim() == 2 && mask.dtype() == DType::boolean,
             "PromptTuning::extend_mask: mask must be bool [B, T], got ", dtype_name(mask.dtype()), " ",
             shape_str(mask.shape()));
  return cat({ones({mask.size(0), num_virtual_tokens}, TensorOptions(DType::boolean).with_device(mask.device())), mask},
             1);
}

std::string TrainableSummary::str() const {
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.2f%%", 100.0 * share);
  return "trainable " + with_commas(trainable) + " of " + with_commas(total) + " parameters (" + pct + ")";
}

TrainableSummary trainable_summary(const Module& model) {
  TrainableSummary s;
  std::set<const TensorImpl*> seen;
  for (const auto& [name, p] : model.named_parameters()) {
    if (!seen.insert(p.impl()).second) continue;
    s.total += p.numel();
    if (p.requires_grad()) s.trainable += p.numel();
  }
  s.share = s.total > 0 ? static_cast<double>(s.trainable) / static_cast<double>(s.total) : 0.0;
  return s;
}

}  // namespace loom::nn
