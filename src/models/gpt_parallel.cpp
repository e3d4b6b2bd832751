// The tensor-parallel GPT (see loom/models/gpt_parallel.hpp). Construction
// mirrors models::GPT step by step, so the Generator's draws are the same.
#include "loom/models/gpt_parallel.hpp"

#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::models {

ParallelGPT::ParallelGPT(const GPTConfig& c, dist::ProcessGroupPtr group, Generator* gen)
    : config(c), tp(std::move(group)) {
  c.check();
  LOOM_CHECK(tp != nullptr, "ParallelGPT: no tensor-parallel group");
  wte = register_module("wte", std::make_shared<dist::VocabParallelEmbedding>(c.vocab_size, c.d_model, tp, 0.02, gen));
  Tensor pos = empty({c.seq_len, c.d_model});
  nn::init::normal_(pos, 0.0, 0.02, gen);
  wpe = register_parameter("wpe", pos);
  drop = register_module("drop", std::make_shared<nn::Dropout>(c.dropout, gen));
  blocks = register_module("blocks", std::make_shared<nn::ModuleList<dist::ParallelTransformerBlock>>());
  const nn::TransformerBlockOptions o = c.block_options();
  for (int64_t i = 0; i < c.n_layers; ++i)
    blocks->push_back(std::make_shared<dist::ParallelTransformerBlock>(o, tp, gen));
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(c.d_model));
}

Tensor ParallelGPT::forward(const Tensor& ids) {
  check_defined(ids, "ParallelGPT", "ids");
  LOOM_CHECK(ids.dim() == 2 && ids.size(1) <= config.seq_len, "rank ", tp->rank(),
             ": ParallelGPT: ids must be [B, T] with T <= ", config.seq_len, ", got ", shape_str(ids.shape()));
  const int64_t t = ids.size(1);
  Tensor x = drop->forward(add(wte->forward(ids), wpe.narrow(0, 0, t)));
  nn::ResidualStream stream{x, Tensor()};
  for (const auto& block : *blocks) stream = block->forward_stream(stream);
  // The tied head: each rank multiplies by its rows of the embedding; the
  // input's gradient is summed over the group (copy_to_tp_region).
  return linear(dist::copy_to_tp_region(stream.normed_by(*ln_f), tp), wte->weight);
}

Tensor ParallelGPT::loss(const Tensor& ids, const Tensor& targets) {
  return dist::vocab_parallel_cross_entropy(forward(ids), targets, tp);
}

}  // namespace loom::models
