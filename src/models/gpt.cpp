#include "loom/models/gpt.hpp"

#include <algorithm>
#include <cmath>

#include "loom/autograd/grad_mode.hpp"
#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::models {

GPTConfig GPTConfig::from_json(const nlohmann::json& m) {
  GPTConfig c;
  c.vocab_size = m.value("vocab_size", c.vocab_size);
  c.d_model = m.value("d_model", c.d_model);
  c.n_layers = m.value("n_layers", c.n_layers);
  c.n_heads = m.value("n_heads", c.n_heads);
  c.seq_len = m.value("seq_len", c.seq_len);
  c.mlp_ratio = m.value("mlp_ratio", c.mlp_ratio);
  c.dropout = m.value("dropout", c.dropout);
  return c;
}

void GPTConfig::check() const {
  LOOM_CHECK(vocab_size > 0 && d_model > 0 && n_layers > 0 && seq_len > 0 && n_heads > 0 && d_model % n_heads == 0,
             "GPT: invalid config (vocab ", vocab_size, ", d_model ", d_model, ", heads ", n_heads, ", layers ",
             n_layers, ", seq_len ", seq_len, ")");
}

nn::TransformerBlockOptions GPTConfig::block_options() const {
  nn::TransformerBlockOptions o;
  o.dim = d_model;
  o.heads = n_heads;
  o.mlp_hidden = mlp_ratio * d_model;
  o.dropout = dropout;
  o.causal = true;
  o.activation = nn::Activation::gelu_tanh;
  return o;
}

GPT::GPT(const GPTConfig& c, Generator* gen) : config(c) {
  c.check();
  wte = register_module("wte", std::make_shared<nn::Embedding>(c.vocab_size, c.d_model, 0.02, gen));
  Tensor pos = empty({c.seq_len, c.d_model});
  nn::init::normal_(pos, 0.0, 0.02, gen);
  wpe = register_parameter("wpe", pos);
  drop = register_module("drop", std::make_shared<nn::Dropout>(c.dropout, gen));
  blocks = register_module("blocks", std::make_shared<nn::ModuleList<nn::TransformerBlock>>());
  const nn::TransformerBlockOptions o = c.block_options();
  for (int64_t i = 0; i < c.n_layers; ++i) blocks->push_back(std::make_shared<nn::TransformerBlock>(o, gen));
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(c.d_model));
}

Tensor GPT::forward(const Tensor& ids) {
  check_defined(ids, "GPT", "ids");
  LOOM_CHECK(ids.dim() == 2 && ids.size(1) <= config.seq_len, "GPT: ids must be [B, T] with T <= ", config.seq_len,
             ", got ", shape_str(ids.shape()));
  const int64_t t = ids.size(1);
  Tensor x = drop->forward(add(wte->forward(ids), wpe.narrow(0, 0, t)));
  nn::ResidualStream stream{x, Tensor()};
  for (const auto& block : *blocks) stream = block->forward_stream(stream);
  return linear(stream.normed_by(*ln_f), wte->weight);  // the tied head
}

std::vector<int32_t> GPT::generate(std::vector<int32_t> tokens, const SamplingOptions& o, Generator& gen) {
  LOOM_CHECK(!tokens.empty(), "GPT::generate: the prompt is empty");
  NoGradGuard guard;
  const bool was_training = is_training();
  eval();
  for (int64_t n = 0; n < o.max_tokens; ++n) {
    const size_t start = tokens.size() > static_cast<size_t>(config.seq_len) ? tokens.size() - config.seq_len : 0;
    std::vector<int64_t> window(tokens.begin() + static_cast<long>(start), tokens.end());
    Tensor logits = forward(from_vector(window, {1, static_cast<int64_t>(window.size())}).to(wte->weight.device()));
    std::vector<float> last = logits.select(1, -1).reshape({-1}).to_vector<float>();
    // Candidates by decreasing logit, filtered by options.allow.
    std::vector<int32_t> order(last.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return last[a] > last[b]; });
    const size_t want = o.temperature <= 0 ? 1 : (o.top_k > 0 ? static_cast<size_t>(o.top_k) : order.size());
    std::vector<int32_t> pool;
    for (int32_t id : order) {
      if (o.allow && !o.allow(tokens, id)) continue;
      pool.push_back(id);
      if (pool.size() == want) break;
    }
    LOOM_CHECK(!pool.empty(), "GPT::generate: no token is allowed after ", tokens.size(), " tokens");
    int32_t next = pool[0];
    if (o.temperature > 0) {
      std::vector<double> p(pool.size());
      double total = 0;
      for (size_t i = 0; i < pool.size(); ++i) total += p[i] = std::exp((last[pool[i]] - last[pool[0]]) / o.temperature);
      double u = static_cast<double>(philox_uniform4(gen.seed(), gen.advance(1))[0]) * total;
      size_t pick = 0;
      while (pick + 1 < pool.size() && u >= p[pick]) u -= p[pick++];
      next = pool[pick];
    }
    tokens.push_back(next);
    if (next == o.stop_token) break;
  }
  train(was_training);
  return tokens;
}

}  // namespace loom::models
