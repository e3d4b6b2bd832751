// linear and linear_gelu through the backend's fused entry (bias and GELU
// applied as the product is written) against the composition of matmul, add
// and gelu they replace: values, every gradient, halves rounded once,
// autocast, and the cases that must compose.
#include <catch2/catch.hpp>

#include <loom/loom.hpp>

#include "../support/random_leaf.hpp"

using namespace loom;
using Catch::Contains;

namespace {

struct LinearInputs {
  Tensor x, w, b;
  LinearInputs(uint64_t seed, DType t, const Shape& x_shape, int64_t out) {
    Generator gen(seed);
    x = testing::random_leaf(x_shape, t, gen);
    w = testing::random_leaf({out, x_shape.back()}, t, gen);
    b = testing::random_leaf({out}, t, gen);
  }
};

double max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.shape() == b.shape());
  return amax(abs(sub(a.to(DType::f64), b.to(DType::f64)))).item<double>();
}

std::string node_of(const Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string("(leaf)"); }

// A loss that weighs every output element differently.
Tensor weighted_sum(const Tensor& y) {
  const double n = static_cast<double>(y.numel());
  Tensor weights = tanh(mul(arange(-n / 2, n / 2, 1, DType::f64), 0.3)).reshape(y.shape());
  return sum(mul(y.to(DType::f64), weights));
}

}  // namespace

TEST_CASE("linear takes the fused entry and matches matmul + add, values and gradients", "[linear]") {
  for (DType t : {DType::f64, DType::f32}) {
    INFO(dtype_name(t));
    const double tol = t == DType::f64 ? 1e-12 : 1e-5;
    LinearInputs f(3, t, {2, 3, 5}, 16), c(3, t, {2, 3, 5}, 16);
    const Tensor fused = linear(f.x, f.w, f.b);
    const Tensor composed = add(matmul(c.x, c.w.t()), c.b);
    CHECK(node_of(fused) == "linear");
    CHECK(node_of(composed) == "add");
    CHECK(max_diff(fused, composed) < tol);
    weighted_sum(fused).backward();
    weighted_sum(composed).backward();
    CHECK(max_diff(f.x.grad(), c.x.grad()) < tol * 10);
    CHECK(max_diff(f.w.grad(), c.w.grad()) < tol * 10);
    CHECK(max_diff(f.b.grad(), c.b.grad()) < tol * 10);
  }
}

TEST_CASE("a fused linear computes only the gradients asked for", "[linear]") {
  for (int frozen = 0; frozen < 3; ++frozen) {
    INFO("frozen input " << frozen);
    LinearInputs f(4, DType::f64, {7, 3}, 8), c(4, DType::f64, {7, 3}, 8);
    Tensor* fi[] = {&f.x, &f.w, &f.b};
    Tensor* ci[] = {&c.x, &c.w, &c.b};
    fi[frozen]->requires_grad_(false);
    ci[frozen]->requires_grad_(false);
    weighted_sum(linear_gelu(f.x, f.w, f.b)).backward();
    weighted_sum(gelu(add(matmul(c.x, c.w.t()), c.b), GeluApprox::tanh)).backward();
    for (int i = 0; i < 3; ++i) {
      INFO("input " << i);
      CHECK(fi[i]->grad().defined() == (i != frozen));
      if (i != frozen) CHECK(max_diff(fi[i]->grad(), ci[i]->grad()) < 1e-12);
    }
  }
}

TEST_CASE("linear_gelu fuses the tanh GELU and composes the erf one", "[linear]") {
  LinearInputs f(5, DType::f64, {4, 6}, 8), c(5, DType::f64, {4, 6}, 8);
  const Tensor fused = linear_gelu(f.x, f.w, f.b, GeluApprox::tanh);
  CHECK(node_of(fused) == "linear_gelu");
  const Tensor composed = gelu(add(matmul(c.x, c.w.t()), c.b), GeluApprox::tanh);
  CHECK(max_diff(fused, composed) < 1e-12);
  weighted_sum(fused).backward();
  weighted_sum(composed).backward();
  CHECK(max_diff(f.x.grad(), c.x.grad()) < 1e-12);
  CHECK(max_diff(f.w.grad(), c.w.grad()) < 1e-12);
  CHECK(max_diff(f.b.grad(), c.b.grad()) < 1e-12);

  const Tensor erf = linear_gelu(f.x, f.w, f.b, GeluApprox::none);
  CHECK(node_of(erf) == "gelu");  // no backend computes the erf form in an epilogue
  CHECK(max_diff(erf, gelu(add(matmul(c.x, c.w.t()), c.b))) < 1e-12);
  // Without a bias there is nothing to fuse into the product.
  CHECK(node_of(linear_gelu(f.x, f.w, Tensor())) == "gelu");
  CHECK(node_of(linear(f.x, f.w)) != "linear");
}

TEST_CASE("a half fused linear rounds once: the f32 result rounded to bf16", "[linear]") {
  LinearInputs h(6, DType::bf16, {9, 40}, 24);
  const Tensor x32 = h.x.detach().to(DType::f32), w32 = h.w.detach().to(DType::f32), b32 = h.b.detach().to(DType::f32);
  for (bool with_gelu : {false, true}) {
    INFO((with_gelu ? "linear_gelu" : "linear"));
    const Tensor half = with_gelu ? linear_gelu(h.x, h.w, h.b) : linear(h.x, h.w, h.b);
    const Tensor wide = with_gelu ? linear_gelu(x32, w32, b32) : linear(x32, w32, b32);
    CHECK(half.dtype() == DType::bf16);
    CHECK(max_diff(half, wide.to(DType::bf16)) == 0.0);  // bit for bit
  }
  // The gradients of the half layer (the CPU composes its weight gradient in
  // bf16) stay within bf16 rounding of the f32 ones.
  Tensor x = x32.clone().requires_grad_(), w = w32.clone().requires_grad_(), b = b32.clone().requires_grad_();
  weighted_sum(linear_gelu(h.x, h.w, h.b)).backward();
  weighted_sum(linear_gelu(x, w, b)).backward();
  const double scale = amax(abs(w.grad())).item<double>();
  CHECK(max_diff(h.w.grad(), w.grad()) < 2e-2 * scale);
  CHECK(max_diff(h.b.grad(), b.grad()) < 2e-2 * amax(abs(b.grad())).item<double>());
  CHECK(max_diff(h.x.grad(), x.grad()) < 2e-2 * amax(abs(x.grad())).item<double>());
}

TEST_CASE("under autocast a fused linear multiplies in bf16 and returns f32 gradients", "[linear]") {
  LinearInputs f(7, DType::f32, {6, 16}, 8);
  const Tensor x16 = f.x.detach().to(DType::bf16), w16 = f.w.detach().to(DType::bf16), b16 = f.b.detach().to(DType::bf16);
  Tensor y;
  {
    AutocastGuard autocast(DType::bf16);
    y = linear_gelu(f.x, f.w, f.b);
  }
  CHECK(y.dtype() == DType::bf16);
  CHECK(node_of(y) == "linear_gelu");
  CHECK(max_diff(y, linear_gelu(x16, w16, b16)) == 0.0);
  // The f32 weight and bias feed the node directly (their bf16 copies are
  // made outside the graph): no cast node between them and their gradients.
  const std::vector<autograd::Edge>& edges = y.grad_fn()->next_edges();
  REQUIRE(edges.size() == 3);
  CHECK(edges[1].node->name() == "AccumulateGrad");
  CHECK(edges[2].node->name() == "AccumulateGrad");
  weighted_sum(y).backward();
  CHECK(f.w.grad().dtype() == DType::f32);
  CHECK(f.b.grad().dtype() == DType::f32);
  CHECK(f.x.grad().dtype() == DType::f32);
  // The same gradients as the bf16 layer's, widened.
  Tensor x16g = x16.clone().requires_grad_(true), w16g = w16.clone().requires_grad_(true),
         b16g = b16.clone().requires_grad_(true);
  weighted_sum(linear_gelu(x16g, w16g, b16g)).backward();
  CHECK(max_diff(f.w.grad(), w16g.grad().to(DType::f32)) <= 1e-2 * (1 + max_diff(w16g.grad(), zeros_like(w16g))));
  CHECK(max_diff(f.b.grad(), b16g.grad().to(DType::f32)) <= 1e-2 * (1 + max_diff(b16g.grad(), zeros_like(b16g))));
}

TEST_CASE("under autocast the f32 master weights' gradients come unrounded from the bf16 product", "[linear]") {
  // As cuBLASLt writes them: bf16 operands, f32 accumulation, f32 output,
  // with no rounding to bf16 on the way (which would cost ~3 digits).
  LinearInputs f(8, DType::f32, {40, 24}, 12);
  Tensor y;
  {
    AutocastGuard autocast(DType::bf16);
    y = linear(f.x, f.w, f.b);
  }
  weighted_sum(y).backward();
  // The float64 reference from what the product saw: the bf16 inputs and
  // the bf16 gradient reaching the node (the loss's weights, rounded).
  const double n = static_cast<double>(y.numel());
  const Tensor g = tanh(mul(arange(-n / 2, n / 2, 1, DType::f64), 0.3)).reshape(y.shape()).to(DType::bf16).to(DType::f64);
  const Tensor x = f.x.detach().to(DType::bf16).to(DType::f64);
  const Tensor want_w = matmul(g.t(), x), want_b = sum(g, {0});
  CHECK(f.w.grad().dtype() == DType::f32);
  CHECK(max_diff(f.w.grad(), want_w) <= 1e-5 * (1 + amax(abs(want_w)).item<double>()));
  CHECK(max_diff(f.b.grad(), want_b) <= 1e-5 * (1 + amax(abs(want_b)).item<double>()));
}

TEST_CASE("nn::MLP takes the fused GELU unless LoRA sits between product and activation", "[linear]") {
  Generator gen(8);
  nn::MLP mlp(8, 16, nn::Activation::gelu_tanh, 0.0, &gen);
  Tensor x = randn({3, 8}, DType::f32, &gen);
  const Tensor want = mlp.fc2->forward(gelu(add(matmul(x, mlp.fc1->weight.t()), mlp.fc1->bias), GeluApprox::tanh));
  CHECK(max_diff(mlp.forward(x), want) < 1e-6);

  nn::LoraOptions lora;
  lora.rank = 2;
  Generator lora_gen(9);
  mlp.fc1->add_lora_adapter("a", lora, randn({2, 8}, DType::f32, &lora_gen), randn({16, 2}, DType::f32, &lora_gen));
  mlp.fc1->lora_adapters()->set_active({"a"});
  const Tensor with_lora = mlp.fc2->forward(gelu(mlp.fc1->forward(x), GeluApprox::tanh));
  CHECK(max_diff(mlp.forward(x), with_lora) < 1e-6);
  CHECK(max_diff(with_lora, want) > 1e-3);  // the adapter did change the layer
}

TEST_CASE("linear_gelu names what is wrong", "[linear]") {
  CHECK_THROWS_WITH(linear_gelu(zeros({2, 4}), zeros({3, 5}), zeros({3})),
                    Contains("linear_gelu") && Contains("[2, 4]") && Contains("[3, 5]"));
  CHECK_THROWS_WITH(linear_gelu(zeros({2, 4}), zeros({3, 4}), zeros({2})), Contains("bias [2]"));
  CHECK_THROWS_WITH(linear_gelu(Tensor(), zeros({3, 4}), zeros({3})), Contains("linear_gelu"));
}
