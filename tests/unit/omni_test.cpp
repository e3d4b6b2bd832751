// The omni-modal parts: encoders, fusion, decoder, losses and metrics, each
// against an independent reference (float64 loops, finite differences,
// brute force, hand-counted cases).
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {

omni::StackOptions small_stack(int64_t layers = 1) {
  omni::StackOptions o;
  o.dim = 8;
  o.heads = 2;
  o.layers = layers;
  return o;
}

// The symmetric multi-positive InfoNCE in float64 loops, written from the definition.
double reference_info_nce(const std::vector<double>& a, const std::vector<double>& b, int64_t n, int64_t d,
                          double logit_scale, const std::vector<int64_t>& keys) {
  auto unit = [&](const std::vector<double>& x) {
    std::vector<double> out(x.size());
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += x[i * d + k] * x[i * d + k];
      for (int64_t k = 0; k < d; ++k) out[i * d + k] = x[i * d + k] / std::sqrt(s + 1e-12);
    }
    return out;
  };
  const auto an = unit(a), bn = unit(b);
  const double scale = std::exp(std::min(logit_scale, std::log(100.0)));
  auto direction = [&](const std::vector<double>& q, const std::vector<double>& g) {
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> logits(n);
      double mx = -INFINITY, positives = 0;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += q[i * d + k] * g[j * d + k];
        logits[j] = scale * dot;
        mx = std::max(mx, logits[j]);
        positives += keys[i] == keys[j];
      }
      double z = 0;
      for (double l : logits) z += std::exp(l - mx);
      for (int64_t j = 0; j < n; ++j)
        if (keys[i] == keys[j]) loss -= (logits[j] - mx - std::log(z)) / positives;
    }
    return loss / static_cast<double>(n);
  };
  return 0.5 * (direction(an, bn) + direction(bn, an));
}

}  // namespace

TEST_CASE("info_nce equals a float64 reference and its gradient matches finite differences", "[omni]") {
  const int64_t n = 5, d = 4;
  Generator gen(3);
  const Tensor a = randn({n, d}, DType::f64, &gen), b = randn({n, d}, DType::f64, &gen);
  const std::vector<int64_t> keys{0, 1, 0, 2, 3};  // rows 0 and 2 show the same thing
  const double ls = 1.3;
  Tensor av = a.clone().requires_grad_(), sv = full({}, ls, DType::f64).requires_grad_();
  Tensor loss = omni::info_nce(av, b, sv, from_vector(keys, {n}));
  const auto a_host = a.to_vector<double>(), b_host = b.to_vector<double>();
  CHECK(loss.item<double>() == Approx(reference_info_nce(a_host, b_host, n, d, ls, keys)).epsilon(1e-12));
  loss.backward();
  const auto grad = av.grad().to_vector<double>();
  const double h = 1e-6;
  for (int64_t i = 0; i < n * d; ++i) {
    auto plus = a_host, minus = a_host;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (reference_info_nce(plus, b_host, n, d, ls, keys) -
                       reference_info_nce(minus, b_host, n, d, ls, keys)) / (2 * h);
    CHECK(grad[i] == Approx(fd).margin(1e-7));
  }
  const double fd_scale = (reference_info_nce(a_host, b_host, n, d, ls + h, keys) -
                           reference_info_nce(a_host, b_host, n, d, ls - h, keys)) / (2 * h);
  CHECK(sv.grad().item<double>() == Approx(fd_scale).margin(1e-7));
}

TEST_CASE("the temperature is clamped at 100 and gets no gradient beyond it", "[omni]") {
  Tensor s = full({}, 6.0, DType::f64).requires_grad_();
  Tensor scale = omni::temperature_scale(s);
  CHECK(scale.item<double>() == Approx(100.0));
  scale.backward();
  CHECK(s.grad().item<double>() == 0.0);
  CHECK(omni::temperature_scale(full({}, omni::kInitLogitScale)).item<double>() == Approx(1 / 0.07));
}

TEST_CASE("info_nce names bad shapes", "[omni]") {
  CHECK_THROWS_WITH(omni::info_nce(zeros({3, 4}), zeros({2, 4}), zeros({})), Contains("must be the same [b, E]"));
  CHECK_THROWS_WITH(omni::info_nce(zeros({3, 4}), zeros({3, 4}), zeros({}), zeros({2}, DType::i64)),
                    Contains("keys must be integer [3]"));
}

TEST_CASE("hardest negatives skip rows with the same key", "[omni]") {
  // row 0: best column 1 shares its key, so column 2 is the hardest negative
  const Tensor sim = from_vector(std::vector<float>{0.1f, 0.9f, 0.5f, 0.2f,  //
                                                    0.3f, 0.2f, 0.1f, 0.8f,  //
                                                    0.4f, 0.4f, 0.9f, 0.1f},
                                 {3, 4});
  const Tensor rows = from_vector(std::vector<int64_t>{7, 8, 9}, {3});
  const Tensor cols = from_vector(std::vector<int64_t>{7, 7, 5, 8}, {4});
  CHECK(omni::hardest_negatives(sim, rows, cols).to_vector<int64_t>() == std::vector<int64_t>{2, 0, 2});
}

TEST_CASE("mask_tokens leaves pads and specials alone and keeps targets only where chosen", "[omni]") {
  Generator gen(5);
  const int64_t first_special = 50, mask_id = 51, pad = 50;
  std::vector<int64_t> ids(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i % 10 == 9 ? pad : static_cast<int64_t>(i % 40);
  const Tensor t = from_vector(ids, {40, 100});
  auto [inputs, targets] = omni::mask_tokens(t, 0.15, mask_id, first_special, &gen);
  const auto in = inputs.to_vector<int64_t>(), tg = targets.to_vector<int64_t>();
  int64_t chosen = 0, masked = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == pad) {
      CHECK(in[i] == pad);
      CHECK(tg[i] == -100);
      continue;
    }
    if (tg[i] == -100) {
      CHECK(in[i] == ids[i]);
    } else {
      CHECK(tg[i] == ids[i]);
      ++chosen;
      masked += in[i] == mask_id;
      CHECK(in[i] < first_special + 2);
    }
  }
  const double rate = static_cast<double>(chosen) / 3600.0;
  CHECK(rate == Approx(0.15).margin(0.03));
  CHECK(static_cast<double>(masked) / chosen == Approx(0.8).margin(0.06));
}

TEST_CASE("span_mask covers whole spans inside the valid frames only", "[omni]") {
  Generator gen(2);
  Tensor valid = zeros({2, 50}, DType::boolean);
  for (int64_t t = 0; t < 30; ++t) valid.data<bool>()[t] = true;          // row 0: 30 frames
  for (int64_t t = 0; t < 50; ++t) valid.data<bool>()[50 + t] = true;     // row 1: all
  const auto m = omni::span_mask(valid, 0.5, 4, &gen).to_vector<bool>();
  int64_t on = 0;
  for (int64_t t = 30; t < 50; ++t) CHECK_FALSE(m[t]);
  for (bool b : m) on += b;
  CHECK(on > 10);
}

TEST_CASE("masked_mse averages squared errors over masked frames only", "[omni]") {
  const Tensor pred = zeros({1, 3, 2}), target = from_vector(std::vector<float>{1, 1, 2, 2, 5, 5}, {1, 3, 2});
  const Tensor mask = from_vector(std::vector<uint8_t>{1, 1, 0}, {1, 3}).to(DType::boolean);
  CHECK(omni::masked_mse(pred, target, mask).item<double>() == Approx((1.0 + 4.0) / 2));
  CHECK(omni::masked_mse(pred, target, zeros({1, 3}, DType::boolean)).item<double>() == 0.0);
}

TEST_CASE("recall at k counts equal keys as hits and its chance is the random-ranking expectation", "[omni]") {
  // queries along the axes, gallery rotated so that the ranking is known
  const Tensor q = from_vector(std::vector<float>{1, 0, 0, 1}, {2, 2});
  const Tensor g = from_vector(std::vector<float>{0, 1, 1, 0.1f, -1, 0}, {3, 2});
  // query 0 ranks g1, g0, g2 (key of g1 = 5, not 1); query 1 ranks g0, g1, g2
  const omni::Recall r = omni::recall_at_k(q, g, {1, 2}, {2, 5, 1}, {1, 2, 3});
  CHECK(r.recall == std::vector<double>{0.5, 0.5, 1.0});
  // one match among 3 items: chance k/3 for both queries
  CHECK(r.chance[0] == Approx(1.0 / 3));
  CHECK(r.chance[1] == Approx(2.0 / 3));
  CHECK(r.chance[2] == Approx(1.0));
}

TEST_CASE("character error rate counts Levenshtein edits over code points", "[omni]") {
  CHECK(omni::char_error_rate({"sitting"}, {"kitten"}) == Approx(3.0 / 6));
  CHECK(omni::char_error_rate({"左边是红色的包"}, {"左边是蓝色的包"}) == Approx(1.0 / 7));
  CHECK(omni::char_error_rate({"", "abc"}, {"ab", "abc"}) == Approx(2.0 / 5));
  CHECK(omni::utf8_code_points("a包").size() == 2);
  CHECK(omni::utf8_code_points("a\xE5\x8C").size() == 3);  // a character cut short: two invalid bytes
  CHECK(omni::valid_utf8("a\xE5\x8C包") == "a\xEF\xBF\xBD\xEF\xBF\xBD包");
}

TEST_CASE("encoders give tokens at the shared width and ignore padding", "[omni]") {
  Generator gen(1);
  omni::TextEncoder text(20, 6, 0, small_stack(), &gen);
  text.eval();
  const Tensor ids = from_vector(std::vector<int64_t>{3, 4, 5, 0, 0, 0}, {1, 6});
  const Tensor shorter = from_vector(std::vector<int64_t>{3, 4, 5}, {1, 3});
  const omni::Encoded e = text.encode(ids), s = text.encode(shorter);
  CHECK(e.tokens.shape() == Shape{1, 6, 8});
  CHECK(allclose(e.pooled, s.pooled, 1e-5, 1e-6));  // pad tokens neither attended nor pooled

  omni::ImageEncoder image(16, 4, small_stack(), &gen);
  CHECK(image.encode(rand({2, 3, 16, 16})).tokens.shape() == Shape{2, 16, 8});
  CHECK_THROWS_WITH(image.encode(rand({2, 3, 12, 12})), Contains("images must be [B, 3, 16, 16]"));

  omni::SignalEncoder audio(omni::Modality::audio, 5, 40, small_stack(), &gen);
  Tensor valid = ones({2, 37}, DType::boolean);
  const omni::Encoded a = audio.encode(randn({2, 37, 5}), valid);
  CHECK(a.tokens.shape() == Shape{2, omni::SignalEncoder::tokens_for(37), 8});
  CHECK(omni::SignalEncoder::tokens_for(37) == 10);
  CHECK(a.mask.shape() == Shape{2, 10});
}

TEST_CASE("the video encoder shares the image stem without owning its parameters", "[omni]") {
  Generator gen(4);
  omni::OmniConfig c;
  c.vocab_size = 30;
  c.d_model = 8;
  c.n_heads = 2;
  c.embed_dim = 6;
  c.image_size = 16;
  c.patch = 4;
  c.n_mels = 5;
  c.mel_frames = 20;
  c.video_frames = 3;
  c.video_grid = 2;
  c.text_len = 6;
  omni::OmniModel model(c, &gen);
  std::set<const void*> storages;
  for (auto& [name, p] : model.named_parameters()) {
    CHECK(name.rfind("video.stem", 0) != 0);
    CHECK(storages.insert(p.data<float>()).second);  // every tensor appears once
  }
  const omni::Encoded v = model.video->encode(rand({2, 3, 3, 16, 16}));
  CHECK(v.tokens.shape() == Shape{2, 3 * 4, 8});
  CHECK(model.embed(omni::Modality::video, v).shape() == Shape{2, 6});
}

TEST_CASE("fusion pools a CLS token that depends on every input", "[omni]") {
  Generator gen(6);
  for (const char* kind : {"joint", "cross_attention"}) {
    omni::Fusion fusion(omni::fusion_kind_from_string(kind), small_stack(), &gen);
    const omni::Encoded text{randn({2, 3, 8}), ones({2, 3}, DType::boolean), Tensor()};
    const omni::Encoded image{randn({2, 4, 8}), Tensor(), Tensor()};
    const omni::Encoded other{randn({2, 4, 8}), Tensor(), Tensor()};
    const omni::Encoded f = fusion.forward({text, image}), g = fusion.forward({text, other});
    CHECK(f.pooled.shape() == Shape{2, 8});
    CHECK_FALSE(allclose(f.pooled, g.pooled, 1e-4, 1e-5));
  }
  CHECK_THROWS_WITH(omni::fusion_kind_from_string("late"), Contains("unknown kind 'late'"));
}

TEST_CASE("decoding: greedy picks the argmax chain and beam search finds a sequence at least as likely", "[omni]") {
  Generator gen(9);
  omni::TextDecoder dec(7, 8, small_stack(2), &gen);
  dec.eval();
  const omni::Encoded ctx{randn({1, 5, 8}, {}, &gen), Tensor(), Tensor()};
  const int32_t start = 5, end = 6;
  // log p of a sequence (ending with `end` when it is finished)
  auto logp = [&](const std::vector<int32_t>& seq, bool finished) {
    NoGradGuard ng;
    std::vector<int64_t> ids{start};
    for (int32_t t : seq) ids.push_back(t);
    const Tensor lp = log_softmax(dec.forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}), ctx), 2);
    double s = 0;
    for (size_t i = 0; i < seq.size(); ++i) s += lp.select(1, static_cast<int64_t>(i)).select(1, seq[i]).item<double>();
    if (finished) s += lp.select(1, static_cast<int64_t>(seq.size())).select(1, end).item<double>();
    return s;
  };
  omni::DecodeOptions o;
  o.max_tokens = 4;
  const auto greedy = dec.generate(ctx, {start}, end, o)[0];
  // greedy: each token is the argmax after the prefix
  {
    NoGradGuard ng;
    std::vector<int64_t> ids{start};
    for (int32_t t : greedy) {
      const Tensor logits = dec.forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}), ctx);
      CHECK(argmax(logits.select(1, static_cast<int64_t>(ids.size()) - 1), 1).item<int64_t>() == t);
      ids.push_back(t);
    }
  }
  o.beam_size = 4;
  o.length_penalty = 0.0;
  const auto beam = dec.generate(ctx, {start}, end, o)[0];
  const bool greedy_finished = static_cast<int64_t>(greedy.size()) < o.max_tokens;
  const bool beam_finished = static_cast<int64_t>(beam.size()) < o.max_tokens;
  if (greedy_finished && beam_finished) CHECK(logp(beam, true) >= logp(greedy, true) - 1e-6);
  for (int32_t t : beam) CHECK((t >= 0 && t < 7 && t != end));
}

TEST_CASE("prompt tuning puts learned tokens before an encoder's tokens and trains them", "[omni]") {
  Generator gen(12);
  omni::TextEncoder text(20, 6, 0, small_stack(), &gen);
  text.add_prompt(3, &gen);
  const Tensor ids = from_vector(std::vector<int64_t>{3, 4, 0, 0}, {1, 4});
  const omni::Encoded e = text.encode(ids);
  CHECK(e.tokens.shape() == Shape{1, 7, 8});
  CHECK(e.mask.to_vector<bool>() == std::vector<bool>{true, true, true, true, true, false, false});
  sum(e.pooled).backward();
  CHECK(text.prompt->prompt.grad().defined());
  CHECK(sum(abs(text.prompt->prompt.grad())).item<double>() > 0);
  CHECK_THROWS_WITH(text.add_prompt(2, &gen), Contains("already added"));
}
