#include "loom/nn/attention.hpp"

#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"

namespace loom::nn {

MultiHeadAttention::MultiHeadAttention(const AttentionOptions& o, Generator* gen) : options(o) {
  LOOM_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "MultiHeadAttention: dim ", o.dim,
             " must be a positive multiple of heads ", o.heads);
  if (options.context_dim == 0) options.context_dim = o.dim;
  if (o.cross) {
    q = register_module("q", std::make_shared<Linear>(o.dim, o.dim, o.bias, gen));
    kv = register_module("kv", std::make_shared<Linear>(options.context_dim, 2 * o.dim, o.bias, gen));
  } else {
    qkv = register_module("qkv", std::make_shared<Linear>(o.dim, 3 * o.dim, o.bias, gen));
  }
  out = register_module("out", std::make_shared<Linear>(o.dim, o.dim, o.bias, gen));
  drop = register_module("drop", std::make_shared<Dropout>(o.dropout, gen));
}

Tensor MultiHeadAttention::forward(const Tensor& x, const Tensor& context, const Tensor& mask, bool causal) {
  check_defined(x, "MultiHeadAttention", "x");
  LOOM_CHECK(x.dim() == 3 && x.size(2) == options.dim, "MultiHeadAttention: x must be [B, T, ", options.dim,
             "], got ", shape_str(x.shape()));
  const int64_t b = x.size(0), t = x.size(1), h = options.heads, hd = options.dim / options.heads;
  auto heads = [&](const Tensor& y) { return y.reshape({b, y.size(1), h, hd}).transpose(1, 2); };
  if (options.cross) {
    LOOM_CHECK(context.defined() && context.dim() == 3 && context.size(0) == b &&
                   context.size(2) == options.context_dim,
               "MultiHeadAttention (cross): context must be [", b, ", S, ", options.context_dim, "], got ",
               context.defined() ? shape_str(context.shape()) : std::string("none"));
    LOOM_CHECK(!causal, "MultiHeadAttention: causal masking applies to self-attention only");
    const Tensor qh = heads(q->forward(x));
    const auto parts = split(kv->forward(context), options.dim, -1);
    const Tensor kh = heads(parts[0]), vh = heads(parts[1]);
    Tensor a = scaled_dot_product_attention(qh, kh, vh, mask);
    return drop->forward(out->forward(a.transpose(1, 2).reshape({b, t, options.dim})));
  }
  return drop->forward(out->forward(self_attention(qkv->forward(x), h, mask, causal)));
}

std::shared_ptr<NormLayer> make_norm(NormKind kind, int64_t dim) {
  if (kind == NormKind::rms_norm) return std::make_shared<RMSNorm>(dim);
  return std::make_shared<LayerNorm>(dim);
}

TransformerBlock::TransformerBlock(const TransformerBlockOptions& o, Generator* gen) : options(o) {
  const int64_t hidden = o.mlp_hidden > 0 ? o.mlp_hidden : 4 * o.dim;
  norm1 = register_module("norm1", make_norm(o.norm, o.dim));
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(
                                     AttentionOptions{o.dim, o.heads, 0, false, true, o.dropout}, gen));
  if (o.cross_attention) {
    norm_cross = register_module("norm_cross", make_norm(o.norm, o.dim));
    cross = register_module("cross", std::make_shared<MultiHeadAttention>(
                                         AttentionOptions{o.dim, o.heads, o.context_dim, true, true, o.dropout}, gen));
  }
  norm2 = register_module("norm2", make_norm(o.norm, o.dim));
  mlp = register_module("mlp", std::make_shared<MLP>(o.dim, hidden, o.activation, o.dropout, gen));
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& mask, const Tensor& context,
                                 const Tensor& context_mask) {
  return forward_stream({x, Tensor()}, mask, context, context_mask).resolved();
}

ResidualStream TransformerBlock::forward_stream(const ResidualStream& x, const Tensor& mask, const Tensor& context,
                                                const Tensor& context_mask) {
  // Each normed output below feeds a product (attention's QKV, the MLP's first layer).
  const ResidualNorm in = x.resolved_and_normed_by(*norm1, true);
  Tensor branch = attn->forward(in.normed, Tensor(), mask, options.causal);
  Tensor stream = in.sum;
  if (cross) {
    LOOM_CHECK(context.defined(), "TransformerBlock: built with cross-attention but given no context");
    const ResidualNorm r = norm_cross->residual_forward(stream, branch, true);
    stream = r.sum;
    branch = cross->forward(r.normed, context, context_mask);
  }
  const ResidualNorm r = norm2->residual_forward(stream, branch, true);
  return {r.sum, mlp->forward(r.normed)};
}

}  // namespace loom::nn
