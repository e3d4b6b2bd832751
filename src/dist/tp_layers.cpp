// Tensor-parallel layers (see loom/dist/tp_layers.hpp). Each layer builds the
// full nn layer from the caller's Generator and keeps its shard, so the
// shards are bitwise slices of the TP=1 initialisation.
#include "loom/dist/tp_layers.hpp"

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"

namespace loom::dist {

namespace {

void check_split(const ProcessGroupPtr& group, const char* layer, const char* what, int64_t n) {
  LOOM_CHECK(group != nullptr, layer, ": no process group");
  LOOM_CHECK(n > 0 && n % group->size() == 0, "rank ", group->rank(), ": ", layer, ": ", what, " ", n,
             " does not split over ", group->size(), " tensor-parallel ranks");
}

// "lora.<adapter>.<param>" of every adapter on `host`, all with `spec`.
void add_lora_specs(const nn::LoraHost& host, const char* param, ShardSpec spec,
                    std::vector<std::pair<std::string, ShardSpec>>& specs) {
  if (!host.lora_adapters()) return;
  for (const auto& name : host.lora_adapters()->names()) specs.push_back({"lora." + name + "." + param, spec});
}

}  // namespace

ColumnParallelLinear::ColumnParallelLinear(int64_t in, int64_t out, ProcessGroupPtr g, bool gather, bool with_bias,
                                           Generator* gen, int64_t parts)
    : in_features(in), out_features(out), fused_parts(parts), gather_output(gather), group(std::move(g)) {
  LOOM_CHECK(parts >= 1 && out % parts == 0, "ColumnParallelLinear: out features ", out, " do not split into ", parts,
             " fused parts");
  check_split(group, "ColumnParallelLinear", "out features per part", out / parts);
  LOOM_CHECK(!(gather && parts > 1), "ColumnParallelLinear: gather_output with fused parts would interleave them");
  nn::Linear full(in, out, with_bias, gen);
  const ShardSpec spec{0, parts};
  weight = register_parameter("weight", shard_of(full.weight, spec, group->rank(), group->size()));
  if (with_bias) bias = register_parameter("bias", shard_of(full.bias, spec, group->rank(), group->size()));
}

Tensor ColumnParallelLinear::forward(const Tensor& x) {
  check_defined(x, "ColumnParallelLinear", "x");
  LOOM_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "rank ", group->rank(), ": ColumnParallelLinear: x must be [..., ",
             in_features, "], got ", shape_str(x.shape()));
  Tensor y = linear(copy_to_tp_region(x, group), weight, bias);
  y = add_lora(y, x, [this](const Tensor& h) { return copy_to_tp_region(h, group); });
  return gather_output ? gather_from_tp_region(y, group) : y;
}

std::vector<std::pair<std::string, ShardSpec>> ColumnParallelLinear::shard_specs() const {
  std::vector<std::pair<std::string, ShardSpec>> s{{"weight", {0, fused_parts}}};
  if (bias.defined()) s.push_back({"bias", {0, fused_parts}});
  add_lora_specs(*this, "B", {0, fused_parts}, s);
  return s;
}

std::pair<Tensor, Tensor> ColumnParallelLinear::lora_shards(const Tensor& a, const Tensor& b) const {
  return {a, shard_of(b, {0, fused_parts}, group->rank(), group->size())};
}

RowParallelLinear::RowParallelLinear(int64_t in, int64_t out, ProcessGroupPtr g, bool parallel_in, bool with_bias,
                                     Generator* gen)
    : in_features(in), out_features(out), input_is_parallel(parallel_in), group(std::move(g)) {
  check_split(group, "RowParallelLinear", "in features", in);
  nn::Linear full(in, out, with_bias, gen);
  weight = register_parameter("weight", shard_of(full.weight, {1, 1}, group->rank(), group->size()));
  if (with_bias) bias = register_parameter("bias", full.bias.detach().clone());
}

Tensor RowParallelLinear::forward(const Tensor& x) {
  check_defined(x, "RowParallelLinear", "x");
  const int64_t local_in = in_features / group->size();
  const int64_t want = input_is_parallel ? local_in : in_features;
  LOOM_CHECK(x.dim() >= 1 && x.size(-1) == want, "rank ", group->rank(), ": RowParallelLinear: x must be [..., ",
             want, "] (", input_is_parallel ? "this rank's slice of " : "", in_features, " features), got ",
             shape_str(x.shape()));
  Tensor xs = input_is_parallel ? x : scatter_to_tp_region(x, group);
  Tensor y = reduce_from_tp_region(linear(xs, weight), group);
  y = add_lora(y, xs, [this](const Tensor& h) { return reduce_from_tp_region(h, group); });
  return bias.defined() ? add(y, bias) : y;
}

std::vector<std::pair<std::string, ShardSpec>> RowParallelLinear::shard_specs() const {
  std::vector<std::pair<std::string, ShardSpec>> s{{"weight", {1, 1}}};
  add_lora_specs(*this, "A", {1, 1}, s);
  return s;
}

std::pair<Tensor, Tensor> RowParallelLinear::lora_shards(const Tensor& a, const Tensor& b) const {
  return {shard_of(a, {1, 1}, group->rank(), group->size()), b};
}

VocabParallelEmbedding::VocabParallelEmbedding(int64_t num, int64_t d, ProcessGroupPtr g, double std, Generator* gen)
    : num_embeddings(num), dim(d), group(std::move(g)) {
  check_split(group, "VocabParallelEmbedding", "vocabulary", num);
  const int64_t per = num / group->size();
  vocab_begin = group->rank() * per;
  vocab_end = vocab_begin + per;
  nn::Embedding full(num, d, std, gen);
  weight = register_parameter("weight", shard_of(full.weight, {0, 1}, group->rank(), group->size()));
}

Tensor VocabParallelEmbedding::forward(const Tensor& ids) {
  check_defined(ids, "VocabParallelEmbedding", "ids");
  LOOM_CHECK(ids.dtype() == DType::i64 || ids.dtype() == DType::i32, "rank ", group->rank(),
             ": VocabParallelEmbedding: ids must be i64 or i32, got ", dtype_name(ids.dtype()));
  const std::vector<int64_t> v = ids.to(DType::i64).to_vector<int64_t>();
  std::vector<int64_t> local(v.size());
  std::vector<double> keep(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    LOOM_CHECK(v[i] >= 0 && v[i] < num_embeddings, "rank ", group->rank(), ": VocabParallelEmbedding: id ", v[i],
               " outside [0, ", num_embeddings, ") in ids ", shape_str(ids.shape()));
    const bool mine = v[i] >= vocab_begin && v[i] < vocab_end;
    local[i] = mine ? v[i] - vocab_begin : 0;
    keep[i] = mine ? 1.0 : 0.0;
  }
  Shape mask_shape = ids.shape();
  mask_shape.push_back(1);
  Tensor mask = from_vector(keep, mask_shape).to(weight.dtype()).to(weight.device());
  Tensor rows = mul(embedding(weight, from_vector(local, ids.shape()).to(weight.device())), mask);
  return reduce_from_tp_region(rows, group);
}

std::vector<std::pair<std::string, ShardSpec>> VocabParallelEmbedding::shard_specs() const {
  return {{"weight", {0, 1}}};
}

ParallelMLP::ParallelMLP(int64_t dim, int64_t hidden, ProcessGroupPtr group, nn::Activation a, double p,
                         Generator* gen)
    : act(a) {
  fc1 = register_module("fc1", std::make_shared<ColumnParallelLinear>(dim, hidden, group, false, true, gen));
  fc2 = register_module("fc2", std::make_shared<RowParallelLinear>(hidden, dim, group, true, true, gen));
  drop = register_module("drop", std::make_shared<nn::Dropout>(p, gen));
}

Tensor ParallelMLP::forward(const Tensor& x) {
  return fc2->forward(drop->forward(nn::activate(fc1->forward(x), act)));
}

ParallelAttention::ParallelAttention(const nn::AttentionOptions& o, ProcessGroupPtr g, Generator* gen)
    : options(o), group(std::move(g)) {
  LOOM_CHECK(!o.cross, "ParallelAttention: cross-attention is not implemented (self-attention only)");
  LOOM_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "ParallelAttention: dim ", o.dim,
             " must be a positive multiple of heads ", o.heads);
  check_split(group, "ParallelAttention", "heads", o.heads);
  options.context_dim = o.dim;
  local_heads = o.heads / group->size();
  qkv = register_module("qkv", std::make_shared<ColumnParallelLinear>(o.dim, 3 * o.dim, group, false, o.bias, gen, 3));
  out = register_module("out", std::make_shared<RowParallelLinear>(o.dim, o.dim, group, true, o.bias, gen));
  drop = register_module("drop", std::make_shared<nn::Dropout>(o.dropout, gen));
}

Tensor ParallelAttention::forward(const Tensor& x, const Tensor& mask_in, bool causal) {
  check_defined(x, "ParallelAttention", "x");
  LOOM_CHECK(x.dim() == 3 && x.size(2) == options.dim, "rank ", group->rank(), ": ParallelAttention: x must be [B, T, ",
             options.dim, "], got ", shape_str(x.shape()));
  const int64_t h = local_heads;
  Tensor mask = mask_in;
  if (mask.defined() && mask.dim() == 4 && mask.size(1) == options.heads && options.heads > 1)
    mask = mask.narrow(1, group->rank() * h, h);
  // This rank's [B, T, 3 * local_dim] holds its q, k and v heads in turn, the
  // layout self_attention reads in place.
  return drop->forward(out->forward(self_attention(qkv->forward(x), h, mask, causal)));
}

ParallelTransformerBlock::ParallelTransformerBlock(const nn::TransformerBlockOptions& o, ProcessGroupPtr group,
                                                   Generator* gen)
    : options(o) {
  LOOM_CHECK(!o.cross_attention, "ParallelTransformerBlock: cross-attention is not implemented");
  const int64_t hidden = o.mlp_hidden > 0 ? o.mlp_hidden : 4 * o.dim;
  norm1 = register_module("norm1", nn::make_norm(o.norm, o.dim));
  attn = register_module("attn", std::make_shared<ParallelAttention>(
                                     nn::AttentionOptions{o.dim, o.heads, 0, false, true, o.dropout}, group, gen));
  norm2 = register_module("norm2", nn::make_norm(o.norm, o.dim));
  mlp = register_module("mlp", std::make_shared<ParallelMLP>(o.dim, hidden, group, o.activation, o.dropout, gen));
}

Tensor ParallelTransformerBlock::forward(const Tensor& x, const Tensor& mask) {
  return forward_stream({x, Tensor()}, mask).resolved();
}

nn::ResidualStream ParallelTransformerBlock::forward_stream(const nn::ResidualStream& x, const Tensor& mask) {
  const ResidualNorm in = x.resolved_and_normed_by(*norm1, true);  // both normed outputs feed products
  const ResidualNorm r = norm2->residual_forward(in.sum, attn->forward(in.normed, mask, options.causal), true);
  return {r.sum, mlp->forward(r.normed)};
}

}  // namespace loom::dist
