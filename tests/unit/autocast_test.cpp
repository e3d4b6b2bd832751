// Mixed precision: dtype promotion of mixed floating operands, and autocast
// (bf16 products, f32 norms / softmax / losses, f32 master weights).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {

double rel_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

TEST_CASE("mixed floating operands compute in the wider dtype, gradients return in each operand's", "[autocast]") {
  Tensor a = from_vector(std::vector<float>{1.5f, -2.25f, 3.0f}, {3}).to(DType::bf16).requires_grad_(true);
  Tensor b = from_vector(std::vector<float>{0.5f, 4.0f, -1.0f}, {3}).requires_grad_(true);
  Tensor y = mul(add(a, b), b);  // (a + b) * b
  CHECK(y.dtype() == DType::f32);
  CHECK(y.to_vector<float>() == std::vector<float>{1.0f, 7.0f, -2.0f});
  sum(y).backward();
  REQUIRE(a.grad().defined());
  CHECK(a.grad().dtype() == DType::bf16);  // dy/da = b
  CHECK(a.grad().to_vector<float>() == std::vector<float>{0.5f, 4.0f, -1.0f});
  CHECK(b.grad().dtype() == DType::f32);  // dy/db = a + 2b
  CHECK(b.grad().to_vector<float>() == std::vector<float>{2.5f, 5.75f, 1.0f});

  CHECK(add(zeros({2}, DType::f16), zeros({2}, DType::bf16)).dtype() == DType::f32);
  CHECK(div(ones({2}, DType::f64), ones({2}, DType::f32)).dtype() == DType::f64);
  CHECK_THROWS_WITH(add(ones({2}), ones({2}, DType::i64)), Contains("add") && Contains("dtype"));
}

TEST_CASE("autocast runs products in bf16 and norms, softmax and losses in f32", "[autocast]") {
  Generator gen(1);
  nn::Linear layer(8, 4, true, &gen);
  Tensor x = randn({5, 8}, DType::f32, &gen);
  Tensor targets = randint(0, 4, {5}, DType::i64, &gen);
  CHECK(layer.forward(x).dtype() == DType::f32);
  {
    AutocastGuard autocast(DType::bf16);
    CHECK(autocast_enabled());
    const Tensor y = layer.forward(x);
    CHECK(y.dtype() == DType::bf16);
    CHECK(matmul(x, x.t()).dtype() == DType::bf16);
    CHECK(matmul(x.to(DType::f64), x.t().to(DType::f64)).dtype() == DType::f64);  // f64 is left alone
    CHECK(layer_norm(y, {4}).dtype() == DType::f32);
    CHECK(softmax(y, -1).dtype() == DType::f32);
    CHECK(log_softmax(y, -1).dtype() == DType::f32);
    CHECK(gelu(y).dtype() == DType::bf16);  // other ops keep their input's dtype
    CHECK(cross_entropy(y, targets).dtype() == DType::f32);
    {
      AutocastGuard off(DType::bf16, false);
      CHECK_FALSE(autocast_enabled());
      CHECK(layer.forward(x).dtype() == DType::f32);
    }
    CHECK(autocast_enabled());
  }
  CHECK_FALSE(autocast_enabled());
  CHECK_THROWS_WITH(AutocastGuard(DType::f32), Contains("bf16 or f16"));
}

TEST_CASE("the fused residual norm reads a bf16 branch as it is, and writes normed in bf16 for a product",
          "[autocast]") {
  // Against the composition that casts: add (promoting the bf16 branch),
  // layer_norm in f32, then (a normed output that feeds a product, under
  // autocast) a cast to bf16. Values and gradients, each in its operand's
  // dtype; the branch on either side; the sum alone.
  for (bool autocast : {false, true}) {
    for (bool feeds_product : {false, true}) {
      INFO("autocast " << autocast << ", normed feeds a product " << feeds_product);
      const bool half_normed = autocast && feeds_product;
      Generator gen(7);
      const Tensor xv = mul(randn({6, 40}, DType::f32, &gen), 2.0).to(DType::bf16);
      const Tensor rv = randn({6, 40}, DType::f32, &gen);
      const Tensor wv = randn({40}, DType::f32, &gen), bv = randn({40}, DType::f32, &gen);
      const Tensor coeffs = randn({6, 40}, DType::f32, &gen);
      auto leaves = [&] {
        return std::array<Tensor, 4>{xv.clone().requires_grad_(true), rv.clone().requires_grad_(true),
                                     wv.clone().requires_grad_(true), bv.clone().requires_grad_(true)};
      };
      auto loss = [&](const Tensor& sum_out, const Tensor& normed) {
        return add(sum(mul(sum_out, sum_out)), sum(mul(normed.to(DType::f32), coeffs)));
      };
      // The fused op with the bf16 addend as x (swapped: as the residual).
      auto fused_norm = [&](const std::array<Tensor, 4>& in, bool swapped) {
        AutocastGuard guard(DType::bf16, autocast);
        return swapped ? residual_layer_norm(in[1], in[0], {40}, in[2], in[3], 1e-5, feeds_product)
                       : residual_layer_norm(in[0], in[1], {40}, in[2], in[3], 1e-5, feeds_product);
      };
      auto composed = leaves();
      const Tensor c_sum = add(composed[0], composed[1]);
      Tensor c_normed = layer_norm(c_sum, {40}, composed[2], composed[3]);
      if (half_normed) c_normed = c_normed.to(DType::bf16);
      loss(c_sum, c_normed).backward();
      for (bool swapped : {false, true}) {
        INFO("swapped " << swapped);
        auto fused = leaves();
        const ResidualNorm r = fused_norm(fused, swapped);
        CHECK(r.sum.dtype() == DType::f32);
        CHECK(r.normed.dtype() == (half_normed ? DType::bf16 : DType::f32));
        CHECK(rel_diff(r.sum, c_sum) == 0.0);
        CHECK(rel_diff(r.normed.to(DType::f32), c_normed.to(DType::f32)) < 1e-6);
        loss(r.sum, r.normed).backward();
        CHECK(fused[0].grad().dtype() == DType::bf16);
        CHECK(rel_diff(fused[0].grad().to(DType::f32), composed[0].grad().to(DType::f32)) < 1e-2);
        for (int i = 1; i < 4; ++i) {
          INFO("input " << i);
          CHECK(fused[i].grad().dtype() == DType::f32);
          CHECK(rel_diff(fused[i].grad(), composed[i].grad()) < 1e-5);
        }
      }
      // Only the sum used: its gradient reaches both addends, each in its dtype.
      auto only_sum = leaves();
      const ResidualNorm r = fused_norm(only_sum, false);
      sum(mul(r.sum, r.sum)).backward();
      CHECK(only_sum[0].grad().dtype() == DType::bf16);
      CHECK(rel_diff(only_sum[0].grad().to(DType::f32), mul(c_sum, 2.0).to(DType::bf16).to(DType::f32)) == 0.0);
      CHECK(rel_diff(only_sum[1].grad(), mul(c_sum, 2.0)) == 0.0);
    }
  }
}

TEST_CASE("cross_entropy reads bf16 logits as they are: the loss and gradient of casting them first", "[autocast]") {
  Generator gen(4);
  const Tensor values = mul(randn({6, 37}, DType::f32, &gen), 3.0).to(DType::bf16);
  Tensor targets = randint(0, 37, {6}, DType::i64, &gen);
  {
    NoGradGuard no_grad;
    targets.narrow(0, 3, 1).fill_(-100);  // ignored
  }
  CrossEntropyOptions smoothed;
  smoothed.label_smoothing = 0.1;
  for (const bool autocast : {true, false}) {
    INFO((autocast ? "under autocast" : "outside autocast"));
    Tensor direct = values.clone().requires_grad_(true), cast_first = values.clone().requires_grad_(true);
    Tensor direct16 = values.to(DType::f16).requires_grad_(true);  // f16: widened first, the same values
    {
      AutocastGuard guard(DType::f16, autocast);
      const Tensor loss16 = cross_entropy(direct16, targets, smoothed);
      CHECK(loss16.dtype() == (autocast ? DType::f32 : DType::f16));
      sum(loss16).backward();
      CHECK(direct16.grad().dtype() == DType::f16);
    }
    Tensor got, want;
    {
      AutocastGuard guard(DType::bf16, autocast);
      got = cross_entropy(direct, targets, smoothed);
    }
    want = cross_entropy(cast_first.to(DType::f32), targets, smoothed);
    if (!autocast) want = want.to(DType::bf16);
    CHECK(got.dtype() == (autocast ? DType::f32 : DType::bf16));
    CHECK(got.to_vector<float>() == want.to_vector<float>());
    sum(got).backward();
    sum(want).backward();
    REQUIRE(direct.grad().dtype() == DType::bf16);
    CHECK(direct.grad().to_vector<float>() == cast_first.grad().to_vector<float>());
  }
}

TEST_CASE("under autocast the master weights keep f32 and get f32 gradients, backward never autocasts",
          "[autocast]") {
  Generator gen(2);
  nn::Linear layer(8, 4, true, &gen);
  Tensor x = randn({5, 8}, DType::f32, &gen);
  Tensor targets = randint(0, 4, {5}, DType::i64, &gen);
  bool autocast_during_backward = true;
  auto grads_of = [&](bool backward_inside) {
    layer.zero_grad();
    std::optional<AutocastGuard> autocast(std::in_place, DType::bf16);
    Tensor loss = cross_entropy(layer.forward(x), targets);
    // The hook runs inside the engine, while the weight's gradient is computed.
    layer.weight.register_hook([&](const Tensor&) -> std::optional<Tensor> {
      autocast_during_backward = autocast_enabled();
      return std::nullopt;
    });
    if (!backward_inside) autocast.reset();
    loss.backward();
    return std::make_pair(layer.weight.grad().clone(), layer.bias.grad().clone());
  };
  const auto [w_out, b_out] = grads_of(false);
  const auto [w_in, b_in] = grads_of(true);
  CHECK_FALSE(autocast_during_backward);  // backward called inside the guard still runs without autocast
  CHECK(layer.weight.dtype() == DType::f32);
  CHECK(w_out.dtype() == DType::f32);
  CHECK(b_out.dtype() == DType::f32);
  CHECK(allclose(w_in, w_out, 0, 0));
  CHECK(allclose(b_in, b_out, 0, 0));
}

TEST_CASE("a GPT training step in bf16 autocast matches the f32 step within bf16 error", "[autocast]") {
  models::GPTConfig c;
  c.vocab_size = 128, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.seq_len = 32;
  Generator gen(3), data(4);
  models::GPT model(c, &gen);
  const Tensor ids = randint(0, c.vocab_size, {4, c.seq_len}, DType::i64, &data);
  const Tensor next = randint(0, c.vocab_size, {4, c.seq_len}, DType::i64, &data);
  auto step = [&](bool bf16) {
    model.zero_grad();
    std::optional<AutocastGuard> autocast;
    if (bf16) autocast.emplace(DType::bf16);
    Tensor logits = model.forward(ids);
    CHECK(logits.dtype() == (bf16 ? DType::bf16 : DType::f32));
    Tensor loss = cross_entropy(logits.reshape({-1, c.vocab_size}), next.reshape({-1}));
    autocast.reset();
    loss.backward();
    std::vector<Tensor> grads;
    for (const auto& p : model.parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(loss.item<double>(), grads);
  };
  const auto [loss32, grads32] = step(false);
  const auto [loss16, grads16] = step(true);
  INFO("loss f32 " << loss32 << ", bf16 " << loss16);
  CHECK(loss16 != loss32);  // the products really ran in bf16
  CHECK(std::abs(loss16 - loss32) <= 2e-2 * std::abs(loss32));
  const auto names = model.named_parameters();
  for (size_t i = 0; i < grads32.size(); ++i) {
    INFO(names[i].first);
    CHECK(grads16[i].dtype() == DType::f32);
    CHECK(rel_diff(grads16[i], grads32[i]) < 5e-2);
  }
}
