// models::GPT split over a tensor-parallel group (Megatron-LM): the token
// embedding, and with it the tied output head, by vocabulary rows; each block
// by attention heads and MLP columns (dist::ParallelTransformerBlock); the
// position embedding and the norms replicated.
//
// Parameter names, shapes after dist::full_state_dict, and the initial
// values (for the same Generator) are those of models::GPT, so a checkpoint
// written in the unsharded layout loads into GPT and into ParallelGPT at any
// TP size (dist::load_full_state_dict). vocab_size and n_heads must divide
// by the TP size, as must mlp_ratio * d_model.
//
// The model gives each rank its vocabulary slice of the logits; loss() is the
// vocab-parallel cross-entropy, so the full [B, T, vocab] logits are never
// formed. Every rank of the group must run the same forward/backward calls.
#pragma once

#include "loom/dist/tp_layers.hpp"
#include "loom/models/gpt.hpp"

namespace loom::models {

class ParallelGPT : public nn::Module {
 public:
  ParallelGPT(const GPTConfig& config, dist::ProcessGroupPtr tp, Generator* gen = nullptr);
  // ids [B, T] (T <= seq_len) -> this rank's logits [B, T, vocab / tp]:
  // classes [r * vocab / tp, (r + 1) * vocab / tp).
  Tensor forward(const Tensor& ids);
  // The mean cross-entropy of predicting targets [B, T] (equal on every rank).
  Tensor loss(const Tensor& ids, const Tensor& targets);

  GPTConfig config;
  dist::ProcessGroupPtr tp;
  std::shared_ptr<dist::VocabParallelEmbedding> wte;
  Tensor wpe;
  std::shared_ptr<nn::ModuleList<dist::ParallelTransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Dropout> drop;

 private:
  std::string type_name() const override { return "ParallelGPT"; }
};

}  // namespace loom::models
