// Multi-head attention and the pre-norm transformer block.
#pragma once

#include "loom/nn/layers.hpp"

namespace loom::nn {

struct AttentionOptions {
  int64_t dim = 0;           // model width (queries and output)
  int64_t heads = 1;
  int64_t context_dim = 0;   // cross-attention: width of the keys/values source (0 = dim)
  bool cross = false;        // false: fused QKV self-attention; true: Q from x, K/V from context
  bool bias = true;
  double dropout = 0.0;      // on the output projection
};

class MultiHeadAttention : public Module {
 public:
  explicit MultiHeadAttention(const AttentionOptions& options, Generator* gen = nullptr);
  // x [B, T, dim]; context [B, S, context_dim] for cross-attention; mask bool,
  // broadcastable to [B, heads, T, S], true = attend (a padding mask is
  // [B, 1, 1, S]); causal only for self-attention.
  Tensor forward(const Tensor& x, const Tensor& context = Tensor(), const Tensor& mask = Tensor(), bool causal = false);
  AttentionOptions options;
  std::shared_ptr<Linear> qkv, q, kv, out;
  std::shared_ptr<Dropout> drop;

 private:
  std::string type_name() const override { return "MultiHeadAttention"; }
};

enum class NormKind { layer_norm, rms_norm };

struct TransformerBlockOptions {
  int64_t dim = 0;
  int64_t heads = 1;
  int64_t mlp_hidden = 0;  // 0 = 4 * dim
  double dropout = 0.0;
  bool causal = false;
  bool cross_attention = false;  // adds a cross-attention sub-layer over a context
  int64_t context_dim = 0;
  NormKind norm = NormKind::layer_norm;
  Activation activation = Activation::gelu;
};

// The norm layer a block option names.
std::shared_ptr<NormLayer> make_norm(NormKind kind, int64_t dim);

// x = x + attn(norm1(x)); [x = x + cross(norm_c(x), context)]; x = x + mlp(norm2(x)).
// The add before norm2 is fused with it (NormLayer::residual_forward).
class TransformerBlock : public Layer {
 public:
  explicit TransformerBlock(const TransformerBlockOptions& options, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor(), Tensor(), Tensor()); }
  Tensor forward(const Tensor& x, const Tensor& mask, const Tensor& context, const Tensor& context_mask);
  // The block on a stream whose last add may be pending, returning its own
  // closing add pending: a stack of blocks fuses each closing add with the
  // next block's norm1, and the last one with the stack's final norm.
  ResidualStream forward_stream(const ResidualStream& x, const Tensor& mask = Tensor(),
                                const Tensor& context = Tensor(), const Tensor& context_mask = Tensor());
  TransformerBlockOptions options;
  std::shared_ptr<NormLayer> norm1, norm2, norm_cross;
  std::shared_ptr<MultiHeadAttention> attn, cross;
  std::shared_ptr<MLP> mlp;

 private:
  std::string type_name() const override { return "TransformerBlock"; }
};

}  // namespace loom::nn
