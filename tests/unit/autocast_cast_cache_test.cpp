// Autocast's cached parameter casts (loom/ops/autocast.hpp): a parameter is
// cast once and reused until its storage version moves; AdamW rewrites the
// bf16 copy in its update. Every check compares with casting afresh.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>

#include <loom/loom.hpp>

using namespace loom;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && allclose(a.to(DType::f32), b.to(DType::f32), 0, 0);
}

Tensor fresh_cast(const Tensor& p) {
  NoGradGuard no_grad;
  return p.detach().to(DType::bf16);
}

}  // namespace

TEST_CASE("a parameter's cast is made once and reused until the parameter changes", "[autocast]") {
  Generator gen(21);
  nn::Linear layer(16, 8, false, &gen);
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  CHECK_FALSE(current_cast_copy(layer.weight, DType::bf16).defined());

  AutocastGuard autocast(DType::bf16);
  const Tensor y1 = layer.forward(x);
  const Tensor copy = current_cast_copy(layer.weight, DType::bf16);
  REQUIRE(copy.defined());
  CHECK(same_bits(copy, fresh_cast(layer.weight)));
  CHECK_FALSE(current_cast_copy(layer.weight, DType::f16).defined());  // one dtype per copy

  const Tensor y2 = layer.forward(x);
  CHECK(current_cast_copy(layer.weight, DType::bf16).raw_data() == copy.raw_data());  // not cast again
  CHECK(same_bits(y1, y2));

  SECTION("an in-place change makes the copy stale; the next use casts the new values") {
    {
      NoGradGuard no_grad;
      layer.weight.mul_(0.5);
    }
    CHECK_FALSE(current_cast_copy(layer.weight, DType::bf16).defined());
    const Tensor y3 = layer.forward(x);
    CHECK(same_bits(current_cast_copy(layer.weight, DType::bf16), fresh_cast(layer.weight)));
    AutocastGuard afresh(DType::bf16, true, /*cache_casts=*/false);
    CHECK(same_bits(y3, layer.forward(x)));
  }
  SECTION("load_state_dict replaces the values; the copy is stale") {
    nn::Linear other(16, 8, false, &gen);
    layer.load_state_dict(other.state_dict());
    CHECK_FALSE(current_cast_copy(layer.weight, DType::bf16).defined());
    CHECK(same_bits(layer.forward(x), other.forward(x)));
  }
  SECTION("gradients reach the f32 parameter as through a fresh cast") {
    const auto weight_grad = [&](bool cache) {
      layer.zero_grad();
      AutocastGuard guard(DType::bf16, true, cache);
      sum(layer.forward(x)).backward();
      return layer.weight.grad().clone();
    };
    const Tensor cached = weight_grad(true), fresh = weight_grad(false);
    CHECK(cached.dtype() == DType::f32);
    CHECK(same_bits(cached, fresh));
  }
}

TEST_CASE("only whole parameters are cached: not frozen tensors, views or inputs, nor with caching off",
          "[autocast]") {
  Generator gen(22);
  Tensor w = randn({8, 16}, DType::f32, &gen).requires_grad_(true);
  Tensor frozen = randn({8, 16}, DType::f32, &gen);
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  {
    AutocastGuard autocast(DType::bf16, true, /*cache_casts=*/false);
    (void)linear(x, w);
    CHECK_FALSE(current_cast_copy(w, DType::bf16).defined());
  }
  AutocastGuard autocast(DType::bf16);
  (void)linear(x, frozen);
  CHECK_FALSE(current_cast_copy(frozen, DType::bf16).defined());
  (void)matmul(x, w.narrow(0, 0, 4).t());  // a view of part of w
  CHECK_FALSE(current_cast_copy(w, DType::bf16).defined());
  (void)linear(x, w);
  CHECK(current_cast_copy(w, DType::bf16).defined());
  CHECK_FALSE(current_cast_copy(x, DType::bf16).defined());
}

namespace {

// The copy kernels (casts among them) that one forward of `model` runs.
int64_t copies_in_forward(models::GPT& model, const Tensor& ids, bool cache) {
  AutocastGuard autocast(DType::bf16, true, cache);
  start_kernel_profile();
  (void)model.forward(ids);
  int64_t copies = 0;
  for (const KernelTime& k : stop_kernel_profile())
    if (k.kernel == "copy") copies += k.calls;
  return copies;
}

}  // namespace

TEST_CASE("once the copies exist, a bf16 GPT forward casts no parameter", "[autocast]") {
  models::GPTConfig c;
  c.vocab_size = 64, c.d_model = 32, c.n_layers = 2, c.n_heads = 2, c.seq_len = 8;
  Generator gen(25);
  models::GPT model(c, &gen);
  const Tensor ids = randint(0, c.vocab_size, {2, c.seq_len}, DType::i64, &gen);
  // Cast by products: each layer's four weights and four biases, and the tied head.
  int64_t product_params = 0;
  for (const auto& [name, p] : model.named_parameters())
    if (name != "wpe" && name.find("norm") == std::string::npos && name.find("ln_f") == std::string::npos)
      ++product_params;
  REQUIRE(product_params == c.n_layers * 8 + 1);
  const int64_t afresh = copies_in_forward(model, ids, false);
  (void)copies_in_forward(model, ids, true);  // makes the copies
  const int64_t cached = copies_in_forward(model, ids, true);
  CHECK(afresh - cached == product_params);
}

namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(nn::Module&)>;

// Four steps of a small GPT under bf16 autocast, casting through the cache or
// afresh: the losses and every parameter, bit for bit. With `copies_kept`,
// every product weight's copy is checked to survive each step unrecast.
void train_cached_and_fresh(const MakeOptimizer& make, bool copies_kept) {
  models::GPTConfig c;
  c.vocab_size = 64, c.d_model = 32, c.n_layers = 2, c.n_heads = 2, c.seq_len = 8;
  Generator g1(23), g2(23), data(24);
  models::GPT cached(c, &g1), fresh(c, &g2);
  std::unique_ptr<optim::Optimizer> opt_cached = make(cached), opt_fresh = make(fresh);
  const auto step = [&](models::GPT& model, optim::Optimizer& opt, const Tensor& ids, const Tensor& next, bool cache) {
    opt.zero_grad();
    std::optional<AutocastGuard> autocast(std::in_place, DType::bf16, true, cache);
    Tensor logits = model.forward(ids);
    Tensor loss = cross_entropy(logits.reshape({-1, c.vocab_size}), next.reshape({-1}));
    autocast.reset();
    loss.backward();
    opt.step(1e-2);
    return loss.item<double>();
  };
  std::vector<const void*> copies_before;
  for (int s = 0; s < 4; ++s) {
    const Tensor ids = randint(0, c.vocab_size, {2, c.seq_len}, DType::i64, &data);
    const Tensor next = randint(0, c.vocab_size, {2, c.seq_len}, DType::i64, &data);
    CHECK(step(cached, *opt_cached, ids, next, true) == step(fresh, *opt_fresh, ids, next, false));
    std::vector<const void*> copies;
    for (const auto& [name, p] : cached.named_parameters()) {
      const Tensor copy = current_cast_copy(p, DType::bf16);
      if (!copies_kept || p.dim() < 2 || name == "wpe") continue;
      INFO("step " << s << ": " << name);
      REQUIRE(copy.defined());  // written by the update, current
      CHECK(same_bits(copy, fresh_cast(p)));
      copies.push_back(copy.raw_data());
    }
    if (!copies_before.empty()) CHECK(copies == copies_before);  // rewritten in place, never recast
    copies_before = copies;
  }
  const auto a = cached.named_parameters(), b = fresh.named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(same_bits(a[i].second, b[i].second));
  }
}

}  // namespace

TEST_CASE("AdamW rewrites the bf16 copies it updates: training equals casting afresh, bit for bit", "[autocast]") {
  train_cached_and_fresh(
      [](nn::Module& m) { return std::make_unique<optim::AdamW>(optim::decay_groups(m, 0.1)); },
      /*copies_kept=*/true);
}

TEST_CASE("SGD's in-place update makes copies stale: training equals casting afresh, bit for bit", "[autocast]") {
  train_cached_and_fresh(
      [](nn::Module& m) {
        return std::make_unique<optim::SGD>(optim::decay_groups(m, 0.1), optim::SGDOptions{0.9, 0, false});
      },
      /*copies_kept=*/false);
}
