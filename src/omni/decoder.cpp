#include "loom/omni/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "loom/autograd/grad_mode.hpp"
#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

TextDecoder::TextDecoder(int64_t vocab_size, int64_t max_len, const StackOptions& options, Generator* gen) {
  embed = register_module("embed", std::make_shared<nn::Embedding>(vocab_size, options.dim, 0.02, gen));
  Tensor p = empty({max_len, options.dim});
  nn::init::normal_(p, 0.0, 0.02, gen);
  positions = register_parameter("positions", p);
  StackOptions so = options;
  so.causal = true;
  so.cross_attention = true;
  stack = register_module("stack", std::make_shared<TransformerStack>(so, gen));
}

Tensor TextDecoder::forward(const Tensor& ids, const Encoded& context) {
  LOOM_CHECK(ids.dim() == 2 && is_integral(ids.dtype()), "TextDecoder: ids must be integer [B, T], got ",
             shape_str(ids.shape()));
  LOOM_CHECK(ids.size(1) <= positions.size(0), "TextDecoder: ", ids.size(1), " tokens exceed max_len ",
             positions.size(0));
  LOOM_CHECK(context.tokens.defined() && context.tokens.size(0) == ids.size(0), "TextDecoder: context batch ",
             context.tokens.defined() ? context.tokens.size(0) : 0, " does not match ids batch ", ids.size(0));
  Tensor x = add(embed->forward(ids), positions.narrow(0, 0, ids.size(1)));
  Tensor y = stack->forward(x, Tensor(), context.tokens, context.mask);
  return linear(y, embed->weight);  // the tied head
}

Encoded repeat_row(const Encoded& e, int64_t row, int64_t copies) {
  Tensor index = full({copies}, static_cast<double>(row), TensorOptions(DType::i64).with_device(e.tokens.device()));
  Encoded out;
  out.tokens = index_select(e.tokens, 0, index);
  if (e.mask.defined()) out.mask = index_select(e.mask, 0, index);
  if (e.pooled.defined()) out.pooled = index_select(e.pooled, 0, index);
  return out;
}

std::vector<std::vector<int32_t>> TextDecoder::generate(const Encoded& context, const std::vector<int32_t>& start,
                                                        int32_t end, const DecodeOptions& o) {
  LOOM_CHECK(static_cast<int64_t>(start.size()) == context.tokens.size(0), "TextDecoder::generate: ",
             start.size(), " start tokens for a context batch of ", context.tokens.size(0));
  LOOM_CHECK(o.max_tokens >= 1 && o.max_tokens < positions.size(0), "TextDecoder::generate: max_tokens ",
             o.max_tokens, " must be in [1, ", positions.size(0) - 1, "]");
  LOOM_CHECK(o.beam_size >= 1, "TextDecoder::generate: beam_size must be at least 1");
  NoGradGuard no_grad;
  if (o.beam_size == 1) return greedy(context, start, end, o.max_tokens);
  std::vector<std::vector<int32_t>> out;
  for (int64_t b = 0; b < context.tokens.size(0); ++b) out.push_back(beam(repeat_row(context, b, 1), start[b], end, o));
  return out;
}

std::vector<std::vector<int32_t>> TextDecoder::greedy(const Encoded& context, const std::vector<int32_t>& start,
                                                      int32_t end, int64_t max_tokens) {
  const int64_t b = context.tokens.size(0);
  std::vector<std::vector<int32_t>> seqs(b);
  std::vector<bool> done(b, false);
  std::vector<int64_t> ids(start.begin(), start.end());  // [B, t] row-major
  for (int64_t t = 1; t <= max_tokens; ++t) {
    Tensor logits = forward(from_vector(ids, {b, t}).to(context.tokens.device()), context);
    const std::vector<int64_t> next = argmax(logits.select(1, t - 1), 1).to_vector<int64_t>();
    const int64_t* n = next.data();
    std::vector<int64_t> grown;
    grown.reserve(b * (t + 1));
    bool all_done = true;
    for (int64_t r = 0; r < b; ++r) {
      grown.insert(grown.end(), ids.begin() + r * t, ids.begin() + (r + 1) * t);
      grown.push_back(n[r]);
      if (!done[r]) {
        if (n[r] == end) done[r] = true;
        else seqs[r].push_back(static_cast<int32_t>(n[r]));
      }
      all_done = all_done && done[r];
    }
    ids.swap(grown);
    if (all_done) break;
  }
  return seqs;
}

// Beam search over one context row (context has batch 1).
std::vector<int32_t> TextDecoder::beam(const Encoded& context, int32_t start, int32_t end, const DecodeOptions& o) {
  struct Hypothesis {
    std::vector<int32_t> tokens;  // after the start token
    double logp = 0;
  };
  const int64_t k = o.beam_size;
  std::vector<Hypothesis> alive{Hypothesis{}}, finished;
  auto score = [&](const Hypothesis& h, size_t length) {
    return h.logp / std::pow(static_cast<double>(std::max<size_t>(length, 1)), o.length_penalty);
  };
  for (int64_t t = 1; t <= o.max_tokens && !alive.empty(); ++t) {
    const int64_t n = static_cast<int64_t>(alive.size());
    std::vector<int64_t> ids;
    for (const Hypothesis& h : alive) {
      ids.push_back(start);
      ids.insert(ids.end(), h.tokens.begin(), h.tokens.end());
    }
    Encoded c = repeat_row(context, 0, n);
    Tensor logp = log_softmax(forward(from_vector(ids, {n, t}).to(c.tokens.device()), c).select(1, t - 1), 1)
                      .to(kCPU)
                      .contiguous();
    const float* lp = logp.data<float>();
    const int64_t v = logp.size(1);
    std::vector<std::pair<double, int64_t>> candidates;  // (logp, hyp * v + token)
    for (int64_t h = 0; h < n; ++h)
      for (int64_t tok = 0; tok < v; ++tok) candidates.emplace_back(alive[h].logp + lp[h * v + tok], h * v + tok);
    const size_t keep = std::min<size_t>(candidates.size(), 2 * k);
    std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    std::vector<Hypothesis> next;
    for (size_t i = 0; i < keep && static_cast<int64_t>(next.size()) < k; ++i) {
      const auto [lpv, id] = candidates[i];
      Hypothesis h{alive[id / v].tokens, lpv};
      if (id % v == end) {
        finished.push_back(h);
      } else {
        h.tokens.push_back(static_cast<int32_t>(id % v));
        next.push_back(std::move(h));
      }
    }
    alive.swap(next);
    if (static_cast<int64_t>(finished.size()) >= k) break;
  }
  const std::vector<Hypothesis>& pool = finished.empty() ? alive : finished;
  const Hypothesis* best = &pool.front();
  for (const Hypothesis& h : pool)
    if (score(h, h.tokens.size() + 1) > score(*best, best->tokens.size() + 1)) best = &h;
  return best->tokens;
}

}  // namespace loom::omni
