// Autocast's cached parameter casts (loom/ops/autocast.hpp): a parameter is
// cast once and reused until its storage version moves; AdamW rewrites the
// bf16 copy in its update. Every check compares with casting afresh.
#include <catch2/catch.hpp>

#include <cstring>
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

// Whether anything cached a cast on t's storage. current_cast_copy cannot
// tell: it answers only for the tensors it caches.
bool storage_holds_a_copy(const Tensor& t) { return t.storage()->cast_copy().copy != nullptr; }

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

TEST_CASE("only whole parameters are cached: not tensors that need no grad, views or inputs, nor with caching off",
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
  CHECK_FALSE(storage_holds_a_copy(frozen));
  (void)matmul(x, w.narrow(0, 0, 4).t());  // a view of part of w
  CHECK_FALSE(current_cast_copy(w, DType::bf16).defined());
  (void)linear(x, w);
  CHECK(current_cast_copy(w, DType::bf16).defined());
  CHECK_FALSE(storage_holds_a_copy(x));

  // Two leaves on halves of one storage: neither owns it, each casts its own values.
  Tensor both = randn({8, 16}, DType::f32, &gen);
  Tensor top = both.narrow(0, 0, 4).requires_grad_(true), bottom = both.narrow(0, 4, 4).requires_grad_(true);
  const Tensor y_top = linear(x, top), y_bottom = linear(x, bottom);
  CHECK_FALSE(storage_holds_a_copy(top));
  CHECK_FALSE(storage_holds_a_copy(bottom));
  AutocastGuard afresh(DType::bf16, true, /*cache_casts=*/false);
  CHECK(same_bits(y_top, linear(x, top)));
  CHECK(same_bits(y_bottom, linear(x, bottom)));
}

TEST_CASE("a nested guard keeps the enclosing choice of caching unless it sets one", "[autocast]") {
  CHECK(autocast_caches_casts());
  AutocastGuard afresh(DType::bf16, true, /*cache_casts=*/false);
  {
    AutocastGuard inner(DType::f16);
    CHECK_FALSE(autocast_caches_casts());
    AutocastGuard innermost(DType::bf16, true, true);
    CHECK(autocast_caches_casts());
  }
  CHECK_FALSE(autocast_caches_casts());
}

TEST_CASE("drop_cast_copies frees the copies, and the next use casts again", "[autocast]") {
  Generator gen(28);
  nn::Linear layer(16, 8, true, &gen);
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  AutocastGuard autocast(DType::bf16);
  const Tensor y = layer.forward(x);
  REQUIRE(current_cast_copy(layer.weight, DType::bf16).defined());
  drop_cast_copies(layer.parameters());
  CHECK_FALSE(current_cast_copy(layer.weight, DType::bf16).defined());
  CHECK_FALSE(current_cast_copy(layer.bias, DType::bf16).defined());
  CHECK(same_bits(layer.forward(x), y));
  CHECK(current_cast_copy(layer.weight, DType::bf16).defined());
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

// Four steps of a small GPT on `device` under bf16 autocast, casting through
// the cache or afresh: the losses and every parameter, bit for bit. With
// `copies_kept`, every product weight's copy is checked to survive each step
// unrecast.
void train_cached_and_fresh(const MakeOptimizer& make, bool copies_kept, Device device = kCPU) {
  models::GPTConfig c;
  c.vocab_size = 64, c.d_model = 32, c.n_layers = 2, c.n_heads = 2, c.seq_len = 8;
  Generator g1(23), g2(23), data(24);
  models::GPT cached(c, &g1), fresh(c, &g2);
  cached.to(device);
  fresh.to(device);
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
    const Tensor ids = randint(0, c.vocab_size, {2, c.seq_len}, DType::i64, &data).to(device);
    const Tensor next = randint(0, c.vocab_size, {2, c.seq_len}, DType::i64, &data).to(device);
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

MakeOptimizer adamw() {
  return [](nn::Module& m) { return std::make_unique<optim::AdamW>(optim::decay_groups(m, 0.1)); };
}

TEST_CASE("AdamW rewrites the bf16 copies it updates: training equals casting afresh, bit for bit", "[autocast]") {
  train_cached_and_fresh(adamw(), /*copies_kept=*/true);
}

TEST_CASE("on the emulated GPU the multi-tensor AdamW kernel keeps the copies: training equals casting afresh",
          "[autocast]") {
  cuda::HostEmulation emulation(1, cuda::EmulatedKernels::cpu_and_tiles);
  start_kernel_profile();
  train_cached_and_fresh(adamw(), /*copies_kept=*/true, cuda_device(0));
  int64_t multi_tensor_updates = 0;
  for (const KernelTime& k : stop_kernel_profile())
    if (k.kernel == "adamw_multi" && k.device == "cuda:0") multi_tensor_updates += k.calls;
  CHECK(multi_tensor_updates > 0);  // the emulated multi-tensor kernel wrote the copies
}

TEST_CASE("a graph that saved a copy refuses its backward once AdamW has rewritten the copy", "[autocast]") {
  Generator gen(27);
  nn::Linear layer(16, 8, true, &gen);
  optim::AdamW opt(optim::single_group(layer));
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  Tensor loss;
  {
    AutocastGuard autocast(DType::bf16);
    loss = sum(layer.forward(x));
  }
  loss.backward(Tensor(), /*retain_graph=*/true);
  opt.step(1e-2);
  REQUIRE(current_cast_copy(layer.weight, DType::bf16).defined());  // rewritten, not recast
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("modified by an in-place operation"));
}

TEST_CASE("SGD's in-place update makes copies stale: training equals casting afresh, bit for bit", "[autocast]") {
  train_cached_and_fresh(
      [](nn::Module& m) {
        return std::make_unique<optim::SGD>(optim::decay_groups(m, 0.1), optim::SGDOptions{0.9, 0, false});
      },
      /*copies_kept=*/false);
}

TEST_CASE("a frozen base weight under LoRA is cast once, and merging the adapter makes its copy stale", "[autocast]") {
  Generator gen(26);
  nn::Linear layer(16, 8, true, &gen);
  nn::LoraOptions o;
  o.rank = 2;
  nn::apply_lora(layer, "default", o, &gen);
  nn::mark_only_lora_trainable(layer);
  {
    NoGradGuard no_grad;  // a trained adapter: B is zero when fresh
    nn::LoraAdapter* adapter = layer.lora_adapters()->find("default");
    adapter->B.copy_(randn(adapter->B.shape(), DType::f32, &gen));
  }
  REQUIRE_FALSE(layer.weight.requires_grad());
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  AutocastGuard autocast(DType::bf16);
  const Tensor y = layer.forward(x);
  const Tensor copy = current_cast_copy(layer.weight, DType::bf16);
  REQUIRE(copy.defined());
  CHECK(same_bits(copy, fresh_cast(layer.weight)));
  (void)layer.forward(x);
  CHECK(current_cast_copy(layer.weight, DType::bf16).raw_data() == copy.raw_data());

  nn::merge_lora(layer, "default");
  CHECK_FALSE(current_cast_copy(layer.weight, DType::bf16).defined());
  const Tensor merged = layer.forward(x);
  AutocastGuard afresh(DType::bf16, true, /*cache_casts=*/false);
  CHECK(same_bits(merged, layer.forward(x)));
  // The adapter is now in the weight: the same output up to bf16 rounding.
  CHECK(allclose(merged.to(DType::f32), y.to(DType::f32), 0.05, 0.05));
}

TEST_CASE("the CPU AdamW kernel writes the copy as the cast rounds: ties, NaN, infinities, the tail", "[autocast]") {
  // 1000 values (not whole blocks of 16: the scalar tail runs too) with
  // lr = 0, so the update leaves each value as it was and the copy must hold
  // exactly its cast: halfway cases (round to even), NaN, infinities, -0,
  // subnormals, and random values.
  const std::vector<uint32_t> special = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x7fc00001u, 0xffc00000u,
                                         0x7f800000u, 0xff800000u, 0x80000000u, 0x00000001u, 0x7f7fffffu};
  Generator gen(29);
  std::vector<float> values = randn({1000}, DType::f32, &gen).to_vector<float>();
  for (size_t i = 0; i < special.size(); ++i) {
    std::memcpy(&values[i], &special[i], 4);
    std::memcpy(&values[values.size() - 1 - i], &special[i], 4);  // in the tail as well
  }
  Tensor p = from_vector(values, {1, 1000}).requires_grad_(true);
  {
    AutocastGuard autocast(DType::bf16);
    (void)linear(ones({1, 1000}), p);  // makes the copy
  }
  {
    NoGradGuard no_grad;  // poison the copy: the update must write every element
    current_cast_copy(p, DType::bf16).fill_(7.0);
  }
  optim::ParamGroup group;
  group.params = {p};
  optim::AdamW opt({group});
  p.set_grad(randn({1, 1000}, DType::f32, &gen));
  opt.step(0.0);
  const Tensor copy = current_cast_copy(p, DType::bf16);
  REQUIRE(copy.defined());
  const std::vector<bf16> got = copy.to_vector<bf16>(), want = fresh_cast(p).to_vector<bf16>();
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << " of 1000");
    CHECK(got[i].bits == want[i].bits);
  }
}

TEST_CASE("collectives bump the version of what they write, so a cached cast of it goes stale", "[autocast]") {
  dist::LocalProcessGroup group;
  Generator gen(30);
  nn::Linear layer(16, 8, true, &gen);
  const Tensor x = randn({4, 16}, DType::f32, &gen);
  AutocastGuard autocast(DType::bf16);
  const auto stale_after = [&](const std::function<void(const Tensor&)>& collective) {
    (void)layer.forward(x);
    REQUIRE(current_cast_copy(layer.weight, DType::bf16).defined());
    NoGradGuard no_grad;
    collective(layer.weight);
    return !current_cast_copy(layer.weight, DType::bf16).defined();
  };
  CHECK(stale_after([&](const Tensor& w) { group.broadcast(w, 0); }));
  CHECK(stale_after([&](const Tensor& w) { group.all_reduce(w); }));
  CHECK(stale_after([&](const Tensor& w) { group.all_gather(w.clone(), w); }));
  CHECK(stale_after([&](const Tensor& w) { group.reduce_scatter(w.clone(), w); }));
}
