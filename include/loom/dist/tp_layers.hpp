// Tensor-parallel layers (Megatron-LM): linear layers split by output
// (column) or input (row) features, a vocabulary-split embedding, and the
// attention, MLP and pre-norm transformer block built from them.
//
// Parameter names are those of the matching nn module (nn::Linear,
// nn::Embedding, nn::MLP, nn::MultiHeadAttention, nn::TransformerBlock), so
// full_state_dict() of a TP module is loadable by the TP=1 module and back.
//
// Initialisation: each layer builds the full nn layer from the same
// Generator (the same draws in the same order as the TP=1 model) and keeps
// its slice, so every shard is bitwise the matching slice of the TP=1
// weights for the same seed. The cost is one full layer's weights held
// briefly on every rank while it is constructed.
//
// Sizes that are split (out features, in features, vocabulary, heads) must
// divide by the group size; errors name the rank and the sizes.
//
// The column and row layers host LoRA adapters (loom/nn/lora.hpp), sharded
// like their weights: see each layer.
#pragma once

#include <memory>

#include "loom/dist/tp_ops.hpp"
#include "loom/dist/tp_sharding.hpp"
#include "loom/nn/attention.hpp"
#include "loom/nn/layers.hpp"

namespace loom::dist {

// y = x W^T + b with W [out, in] split by rows: this rank holds W [out/tp, in]
// and b [out/tp] and computes its slice of y. The input passes through
// copy_to_tp_region (its gradient is all-reduced). gather_output = true
// all-gathers y to [.., out]; otherwise y stays [.., out/tp] (feed it to a
// RowParallelLinear). fused_parts > 1: the out features are that many equal
// blocks (a fused QKV) and each is split separately.
// LoRA: A [r, in] replicated, B [out/tp, r] split like the weight; the [.., r]
// activation A x passes copy_to_tp_region, so A's gradient is the full sum.
class ColumnParallelLinear : public nn::Layer, public TensorParallelModule, public nn::LoraHost {
 public:
  ColumnParallelLinear(int64_t in_features, int64_t out_features, ProcessGroupPtr group, bool gather_output = false,
                       bool bias = true, Generator* gen = nullptr, int64_t fused_parts = 1);
  Tensor forward(const Tensor& x) override;
  std::vector<std::pair<std::string, ShardSpec>> shard_specs() const override;
  Tensor weight, bias;
  int64_t in_features, out_features, fused_parts;
  bool gather_output;
  ProcessGroupPtr group;

  int64_t lora_in_features() const override { return in_features; }
  int64_t lora_out_features() const override { return out_features; }
  Tensor lora_weight() const override { return weight; }
  bool lora_sharded() const override { return true; }
  std::pair<Tensor, Tensor> lora_shards(const Tensor& a, const Tensor& b) const override;

 private:
  void register_lora(std::shared_ptr<nn::LoraAdapters> adapters) override {
    register_module("lora", std::move(adapters));
  }
  std::string type_name() const override { return "ColumnParallelLinear"; }
};

// y = x W^T + b with W [out, in] split by columns: this rank holds
// W [out, in/tp] and multiplies its slice of x; the partial products are
// summed by reduce_from_tp_region and b (replicated) is added once after.
// input_is_parallel = false: x is the full [.., in] and each rank takes its
// slice (scatter_to_tp_region).
// LoRA: A [r, in/tp] split like the weight, B [out, r] replicated; the
// partial [.., r] products A x are summed by their own reduce_from_tp_region
// before B (summing B A x with the base's partial products instead would
// leave each rank with only its part of B's gradient).
class RowParallelLinear : public nn::Layer, public TensorParallelModule, public nn::LoraHost {
 public:
  RowParallelLinear(int64_t in_features, int64_t out_features, ProcessGroupPtr group, bool input_is_parallel = true,
                    bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::vector<std::pair<std::string, ShardSpec>> shard_specs() const override;
  Tensor weight, bias;
  int64_t in_features, out_features;
  bool input_is_parallel;
  ProcessGroupPtr group;

  int64_t lora_in_features() const override { return in_features; }
  int64_t lora_out_features() const override { return out_features; }
  Tensor lora_weight() const override { return weight; }
  bool lora_sharded() const override { return true; }
  std::pair<Tensor, Tensor> lora_shards(const Tensor& a, const Tensor& b) const override;

 private:
  void register_lora(std::shared_ptr<nn::LoraAdapters> adapters) override {
    register_module("lora", std::move(adapters));
  }
  std::string type_name() const override { return "RowParallelLinear"; }
};

// Rows [r*V/tp, (r+1)*V/tp) of the embedding table on rank r. Ids outside
// this rank's range give zero rows; reduce_from_tp_region sums the ranks'
// rows into the full embedding.
class VocabParallelEmbedding : public nn::Layer, public TensorParallelModule {
 public:
  VocabParallelEmbedding(int64_t num_embeddings, int64_t dim, ProcessGroupPtr group, double std = 1.0,
                         Generator* gen = nullptr);
  Tensor forward(const Tensor& ids) override;
  std::vector<std::pair<std::string, ShardSpec>> shard_specs() const override;
  Tensor weight;
  int64_t num_embeddings, dim, vocab_begin, vocab_end;
  ProcessGroupPtr group;

 private:
  std::string type_name() const override { return "VocabParallelEmbedding"; }
};

// nn::MLP split over the group: fc1 column-parallel (hidden/tp activations
// per rank), fc2 row-parallel. Two collectives forward (one in backward).
class ParallelMLP : public nn::Layer {
 public:
  ParallelMLP(int64_t dim, int64_t hidden, ProcessGroupPtr group, nn::Activation act = nn::Activation::gelu,
              double dropout = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<ColumnParallelLinear> fc1;
  std::shared_ptr<RowParallelLinear> fc2;
  std::shared_ptr<nn::Dropout> drop;
  nn::Activation act;

 private:
  std::string type_name() const override { return "ParallelMLP"; }
};

// Self-attention (nn::MultiHeadAttention without cross) with the heads split:
// the fused QKV is column-parallel with 3 parts, so rank r holds q, k and v of
// heads [r*h/tp, (r+1)*h/tp); the output projection is row-parallel.
class ParallelAttention : public nn::Module {
 public:
  ParallelAttention(const nn::AttentionOptions& options, ProcessGroupPtr group, Generator* gen = nullptr);
  // x [B, T, dim]; mask as nn::MultiHeadAttention (a per-head mask
  // [B, heads, T, S] is sliced to this rank's heads).
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor(), bool causal = false);
  nn::AttentionOptions options;
  int64_t local_heads;
  std::shared_ptr<ColumnParallelLinear> qkv;
  std::shared_ptr<RowParallelLinear> out;
  std::shared_ptr<nn::Dropout> drop;
  ProcessGroupPtr group;

 private:
  std::string type_name() const override { return "ParallelAttention"; }
};

// nn::TransformerBlock (pre-norm, self-attention only) with ParallelAttention
// and ParallelMLP; the norms are replicated.
class ParallelTransformerBlock : public nn::Layer {
 public:
  ParallelTransformerBlock(const nn::TransformerBlockOptions& options, ProcessGroupPtr group,
                           Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  Tensor forward(const Tensor& x, const Tensor& mask);
  // As nn::TransformerBlock::forward_stream: the closing add left pending.
  nn::ResidualStream forward_stream(const nn::ResidualStream& x, const Tensor& mask = Tensor());
  nn::TransformerBlockOptions options;
  std::shared_ptr<nn::NormLayer> norm1, norm2;
  std::shared_ptr<ParallelAttention> attn;
  std::shared_ptr<ParallelMLP> mlp;

 private:
  std::string type_name() const override { return "ParallelTransformerBlock"; }
};

}  // namespace loom::dist
