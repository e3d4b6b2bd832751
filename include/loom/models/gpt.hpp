// A GPT-style causal language model: token + learned position embeddings,
// pre-norm transformer blocks, a final LayerNorm, and an output head tied to
// the token embedding.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <vector>

#include "loom/nn/attention.hpp"
#include "loom/nn/container.hpp"

namespace loom::models {

struct GPTConfig {
  int64_t vocab_size = 4096;
  int64_t d_model = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t seq_len = 128;
  double dropout = 0.0;
  int64_t mlp_ratio = 4;

  // From a recipe's `model` section (keys vocab_size, d_model, n_layers,
  // n_heads, seq_len, mlp_ratio, dropout; missing keys keep the defaults).
  static GPTConfig from_json(const nlohmann::json& model);
  // Throws naming the fields when the config cannot build a model.
  void check() const;
  // The options of every block: pre-norm, causal, GELU (tanh), MLP of mlp_ratio * d_model.
  nn::TransformerBlockOptions block_options() const;
};

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: the whole vocabulary
  int64_t max_tokens = 64;
  int32_t stop_token = -1;   // generation ends after this id (-1: never)
  // When set, only tokens it accepts (given the sequence so far) are sampled,
  // e.g. to keep byte-level output valid UTF-8.
  std::function<bool(const std::vector<int32_t>& so_far, int32_t token)> allow;
};

class GPT : public nn::Module {
 public:
  explicit GPT(const GPTConfig& config, Generator* gen = nullptr);
  // ids [B, T] (T <= seq_len) -> logits [B, T, vocab]
  Tensor forward(const Tensor& ids);
  // Continues `prompt` token by token (context cropped to seq_len).
  std::vector<int32_t> generate(std::vector<int32_t> prompt, const SamplingOptions& options, Generator& gen);

  GPTConfig config;
  std::shared_ptr<nn::Embedding> wte;
  Tensor wpe;
  std::shared_ptr<nn::ModuleList<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Dropout> drop;

 private:
  std::string type_name() const override { return "GPT"; }
};

}  // namespace loom::models
