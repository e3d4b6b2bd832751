#include <catch2/catch.hpp>

#include <stdexcept>

#include <loom/loom.hpp>

#include "../support/random_leaf.hpp"

using namespace loom;

TEST_CASE("gradients accumulate in .grad across backward calls", "[autograd]") {
  Tensor w = from_vector<double>({1, 2, 3}, {3}, true);
  sum(mul(w, w)).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{2, 4, 6});
  sum(mul(w, 3.0)).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("backward with an explicit output gradient", "[autograd]") {
  Tensor x = from_vector<double>({1, 2}, {2}, true);
  Tensor y = mul(x, x);
  y.backward(from_vector<double>({10, 100}, {2}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{20, 400});
  Tensor z = mul(x, 2.0);
  CHECK_THROWS_WITH(z.backward(), Catch::Contains("non-scalar"));
}

TEST_CASE("a tensor used twice gets both contributions", "[autograd]") {
  Tensor x = from_vector<double>({3}, {1}, true);
  Tensor y = add(mul(x, x), mul(x, 4.0));  // dy/dx = 2x + 4 = 10
  y.backward(ones({1}, DType::f64));
  CHECK(x.grad().item<double>() == 10);
}

TEST_CASE("add hands both leaves independent gradients", "[autograd]") {
  Tensor a = ones({2}, TensorOptions(DType::f64).with_requires_grad());
  Tensor b = ones({2}, TensorOptions(DType::f64).with_requires_grad());
  sum(add(a, b)).backward();
  {
    NoGradGuard g;
    a.grad().mul_(5.0);
  }
  CHECK(b.grad().to_vector<double>() == std::vector<double>{1, 1});
}

TEST_CASE("NoGradGuard and detach stop the graph", "[autograd]") {
  Tensor x = ones({2}, TensorOptions().with_requires_grad());
  {
    NoGradGuard g;
    Tensor y = mul(x, 2.0);
    CHECK_FALSE(y.requires_grad());
  }
  CHECK(grad_enabled());
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  Tensor z = add(mul(x, d), 0.0);
  sum(z).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 1});  // d is a constant
}

TEST_CASE("GradModeGuard sets grad mode for its scope and restores it, also past an exception", "[autograd]") {
  Tensor x = ones({2}, TensorOptions().with_requires_grad());
  NoGradGuard off;
  {
    GradModeGuard on(true);
    CHECK(grad_enabled());
    CHECK(mul(x, 2.0).requires_grad());
  }
  CHECK_FALSE(grad_enabled());
  try {
    GradModeGuard on(true);
    throw std::runtime_error("leaving the scope");
  } catch (const std::runtime_error&) {
  }
  CHECK_FALSE(grad_enabled());
  CHECK_FALSE(mul(x, 2.0).requires_grad());
}

TEST_CASE("retain_graph allows a second backward, without it a clear error", "[autograd]") {
  Tensor x = from_vector<double>({2}, {1}, true);
  Tensor y = sum(exp(x));
  y.backward(Tensor(), true);
  y.backward();
  CHECK(x.grad().item<double>() == Approx(2 * std::exp(2.0)));
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("second time") && Catch::Contains("exp"));
}

TEST_CASE("in-place change of a saved tensor is refused at backward", "[autograd]") {
  Tensor w = ones({3}, TensorOptions().with_requires_grad());
  Tensor x = full({3}, 2.0);
  Tensor y = sum(mul(w, x));  // mul saves x
  x.add_(ones({3}));
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("mul") && Catch::Contains("[3]") && Catch::Contains("in-place"));
}

TEST_CASE("in-place ops on tensors that require grad are refused", "[autograd]") {
  Tensor w = ones({3}, TensorOptions().with_requires_grad());
  CHECK_THROWS_WITH(w.add_(ones({3})), Catch::Contains("add_") && Catch::Contains("requires grad"));
  NoGradGuard g;
  w.add_(ones({3}));  // an optimizer update
  CHECK(w.to_vector<float>() == std::vector<float>{2, 2, 2});
}

TEST_CASE("hooks see and may replace gradients", "[autograd]") {
  Tensor x = from_vector<double>({1, 2}, {2}, true);
  Tensor h = mul(x, 3.0);
  std::vector<double> seen;
  h.register_hook([&](const Tensor& g) {
    seen = g.to_vector<double>();
    return std::optional<Tensor>(mul(g, 10.0));
  });
  int ready = 0;
  x.register_grad_ready_hook([&](Tensor& leaf) {
    ++ready;
    CHECK(leaf.grad().to_vector<double>() == std::vector<double>{30, 30});
  });
  sum(h).backward();
  CHECK(seen == std::vector<double>{1, 1});
  CHECK(ready == 1);
}

TEST_CASE("ready hooks fire in reverse order of use, last layer first", "[autograd]") {
  Tensor w1 = ones({2}, TensorOptions(DType::f64).with_requires_grad());
  Tensor w2 = ones({2}, TensorOptions(DType::f64).with_requires_grad());
  std::vector<int> order;
  w1.register_grad_ready_hook([&](Tensor&) { order.push_back(1); });
  w2.register_grad_ready_hook([&](Tensor&) { order.push_back(2); });
  Tensor x = from_vector<double>({1, 2}, {2});
  sum(mul(mul(x, w1), w2)).backward();
  CHECK(order == std::vector<int>{2, 1});
}

TEST_CASE("retain_grad keeps a non-leaf gradient", "[autograd]") {
  Tensor x = from_vector<double>({1, 2}, {2}, true);
  Tensor h = mul(x, 2.0);
  h.retain_grad();
  sum(mul(h, h)).backward();
  CHECK(h.grad().to_vector<double>() == std::vector<double>{4, 8});
}

TEST_CASE("integer tensors cannot require grad", "[autograd]") {
  Tensor i = arange(3, DType::i64);
  CHECK_THROWS_WITH(i.requires_grad_(), Catch::Contains("floating"));
}

TEST_CASE("a small model trains with plain SGD", "[autograd]") {
  // y = 3x - 1 learned by a 1-d linear model
  Generator gen(1);
  Tensor x = randn({64, 1}, {}, &gen);
  Tensor y = sub(mul(x, 3.0), 1.0);
  Tensor w = zeros({1, 1}, TensorOptions().with_requires_grad());
  Tensor b = zeros({1}, TensorOptions().with_requires_grad());
  for (int step = 0; step < 200; ++step) {
    Tensor diff = sub(linear(x, w, b), y);
    mean(mul(diff, diff)).backward();
    NoGradGuard g;
    w.add_(w.grad(), -0.1);
    b.add_(b.grad(), -0.1);
    w.zero_grad();
    b.zero_grad();
  }
  CHECK(w.item<float>() == Approx(3.0).margin(1e-3));
  CHECK(b.item<float>() == Approx(-1.0).margin(1e-3));
}

namespace {

// Fresh f64 leaves for the fused residual norm and its composition.
struct ResidualNormInputs {
  Tensor x, r, w, b;
  explicit ResidualNormInputs(uint64_t seed) {
    Generator gen(seed);
    x = testing::random_leaf({5, 7}, DType::f64, gen);
    r = testing::random_leaf({5, 7}, DType::f64, gen);
    w = testing::random_leaf({7}, DType::f64, gen);
    b = testing::random_leaf({7}, DType::f64, gen);
  }
};

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  INFO(what);
  REQUIRE(a.defined() == b.defined());
  if (!a.defined()) return;
  CHECK(amax(abs(sub(a, b))).item<double>() < 1e-12);
}

}  // namespace

TEST_CASE("an op with two outputs: gradients from either, both or one output", "[autograd]") {
  // residual_layer_norm is one node with outputs {x + r, layer_norm(x + r)};
  // every way of using them must match the two separate ops.
  for (int use = 0; use < 3; ++use) {  // 0: both, 1: the normed only, 2: the sum only
    ResidualNormInputs f(11), u(11);
    const ResidualNorm fused = residual_layer_norm(f.x, f.r, {7}, f.w, f.b);
    REQUIRE(fused.sum.grad_fn() == fused.normed.grad_fn());
    Tensor sum_u = add(u.x, u.r);
    Tensor normed_u = layer_norm(sum_u, {7}, u.w, u.b);
    check_same(fused.sum, sum_u, "sum");
    check_same(fused.normed, normed_u, "normed");
    auto loss = [&](const Tensor& s, const Tensor& n) {
      Tensor ls = sum(mul(s, s)), ln = sum(mul(n, arange(0, 35, 1, DType::f64).reshape({5, 7})));
      return use == 0 ? add(ls, ln) : use == 1 ? ln : ls;
    };
    loss(fused.sum, fused.normed).backward();
    loss(sum_u, normed_u).backward();
    check_same(f.x.grad(), u.x.grad(), "x");
    check_same(f.r.grad(), u.r.grad(), "residual");
    check_same(f.w.grad(), u.w.grad(), "weight");
    check_same(f.b.grad(), u.b.grad(), "bias");
  }
}

TEST_CASE("hooks and retain_grad see each output of a two-output node", "[autograd]") {
  ResidualNormInputs f(12);
  const ResidualNorm out = residual_rms_norm(f.x, f.r, {7}, f.w);
  out.sum.retain_grad();
  out.normed.retain_grad();
  int normed_calls = 0;
  out.normed.register_hook([&](const Tensor& g) -> std::optional<Tensor> {
    ++normed_calls;
    return mul(g, 0.0);  // the norm then contributes nothing
  });
  sum(add(out.sum, out.normed)).backward();
  CHECK(normed_calls == 1);
  CHECK(out.sum.grad().defined());
  CHECK(amax(abs(sub(out.sum.grad(), ones({5, 7}, DType::f64)))).item<double>() == 0.0);
  CHECK(amax(abs(out.normed.grad())).item<double>() == 0.0);
  // Only the sum's gradient reached x and r, and the weight's is zero.
  CHECK(amax(abs(sub(f.x.grad(), ones({5, 7}, DType::f64)))).item<double>() < 1e-15);
  CHECK(amax(abs(sub(f.r.grad(), ones({5, 7}, DType::f64)))).item<double>() < 1e-15);
  CHECK(amax(abs(f.w.grad())).item<double>() == 0.0);
}

TEST_CASE("the fused residual norm names what is wrong", "[autograd]") {
  Tensor x = zeros({2, 4}), r = zeros({2, 3});
  CHECK_THROWS_WITH(residual_layer_norm(x, r, {4}), Catch::Contains("residual [2, 3] must have the shape of x [2, 4]"));
  CHECK_THROWS_WITH(residual_rms_norm(x, zeros({2, 4}), {3}), Catch::Contains("normalized_shape [3]"));
  CHECK_THROWS_WITH(residual_layer_norm(x, zeros({2, 4}, DType::i32), {4}), Catch::Contains("dtype mismatch"));
  CHECK_THROWS_WITH(residual_layer_norm(zeros({2, 4}, DType::f64), zeros({2, 4}, DType::boolean), {4}),
                    Catch::Contains("dtype mismatch"));
}
