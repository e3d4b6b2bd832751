// conv2d through the backend's convolution entry (one node, keeping its
// im2col columns for the backward) against the composition it replaces,
// unfold2d + matmul + add: values and every gradient, with and without bias,
// strides and padding, and the calls that must compose.
#include <catch2/catch.hpp>

#include <loom/loom.hpp>

#include "../support/random_leaf.hpp"

using namespace loom;

namespace {

struct ConvInputs {
  Tensor x, w, b;
  ConvInputs(uint64_t seed, DType t, const Shape& x_shape, const Shape& w_shape) {
    Generator gen(seed);
    x = testing::random_leaf(x_shape, t, gen);
    w = testing::random_leaf(w_shape, t, gen);
    b = testing::random_leaf({w_shape[0]}, t, gen);
  }
};

// stride and padding as {height, width}, or one value for both.
Tensor composed_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, std::vector<int64_t> stride,
                       std::vector<int64_t> padding) {
  if (stride.size() == 1) stride.push_back(stride[0]);
  if (padding.size() == 1) padding.push_back(padding[0]);
  const int64_t o = w.size(0), oh = (x.size(2) + 2 * padding[0] - w.size(2)) / stride[0] + 1;
  const int64_t ow = (x.size(3) + 2 * padding[1] - w.size(3)) / stride[1] + 1;
  Tensor y = matmul(w.reshape({o, -1}), unfold2d(x, {w.size(2), w.size(3)}, stride, padding))
                 .reshape({x.size(0), o, oh, ow});
  return b.defined() ? add(y, b.reshape({1, o, 1, 1})) : y;
}

double max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.shape() == b.shape());
  return amax(abs(sub(a.to(DType::f64), b.to(DType::f64)))).item<double>();
}

Tensor weighted_sum(const Tensor& y) {
  const double n = static_cast<double>(y.numel());
  return sum(mul(y.to(DType::f64), tanh(mul(arange(-n / 2, n / 2, 1, DType::f64), 0.1)).reshape(y.shape())));
}

// got (from a's leaves) and want (from b's, the same values) agree within
// tol, and so do the gradients of one weighted sum of each: x's, w's, and
// b's where the bias took part.
void check_values_and_gradients(const Tensor& got, const Tensor& want, const ConvInputs& a, const ConvInputs& b,
                                bool bias, double tol) {
  CHECK(max_diff(got, want) < tol);
  weighted_sum(got).backward();
  weighted_sum(want).backward();
  CHECK(max_diff(a.x.grad(), b.x.grad()) < tol);
  CHECK(max_diff(a.w.grad(), b.w.grad()) < tol);
  if (bias) CHECK(max_diff(a.b.grad(), b.b.grad()) < tol);
}

}  // namespace

TEST_CASE("conv2d takes the fused entry and matches unfold2d + matmul + add", "[conv]") {
  struct Case {
    Shape x, w;
    int64_t stride, padding;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 9, 8}, {5, 3, 3, 3}, 1, 1, true},   // same-size 3x3
      {{2, 3, 8, 8}, {6, 3, 4, 4}, 4, 0, true},   // a patch stem
      {{1, 2, 7, 5}, {4, 2, 3, 2}, 2, 1, false},  // uneven window, no bias
      // over a register tile both ways, ragged: the weight gradient's
      // threads split its 45 taps (columns), then its 20 channels (rows)
      {{3, 5, 11, 10}, {13, 5, 3, 3}, 1, 1, true},
      {{4, 1, 12, 12}, {20, 1, 3, 3}, 1, 1, true},
      // under one tile: the threads sum shares of the images instead
      {{5, 1, 9, 9}, {4, 1, 3, 3}, 1, 1, true},
      // f64's rows of the weight gradient split across threads
      {{2, 4, 20, 20}, {40, 4, 3, 3}, 1, 1, true},
  };
  for (DType t : {DType::f64, DType::f32}) {
    for (const Case& c : cases) {
      INFO(dtype_name(t) << " x " << shape_str(c.x) << " w " << shape_str(c.w) << " stride " << c.stride);
      const double tol = t == DType::f64 ? 1e-12 : 1e-4;
      ConvInputs f(21, t, c.x, c.w), u(21, t, c.x, c.w);
      const Tensor fb = c.bias ? f.b : Tensor(), ub = c.bias ? u.b : Tensor();
      const Tensor fused = conv2d(f.x, f.w, fb, {c.stride}, {c.padding});
      const Tensor composed = composed_conv2d(u.x, u.w, ub, {c.stride}, {c.padding});
      REQUIRE(fused.grad_fn() != nullptr);
      CHECK(fused.grad_fn()->name() == "conv2d");
      check_values_and_gradients(fused, composed, f, u, c.bias, tol);
      CHECK(f.b.grad().defined() == c.bias);
    }
  }
}

TEST_CASE("a fused conv2d computes only the gradients asked for", "[conv]") {
  for (int frozen = 0; frozen < 3; ++frozen) {
    INFO("frozen input " << frozen);
    ConvInputs f(22, DType::f64, {2, 2, 6, 6}, {3, 2, 3, 3}), u(22, DType::f64, {2, 2, 6, 6}, {3, 2, 3, 3});
    Tensor* fi[] = {&f.x, &f.w, &f.b};
    Tensor* ui[] = {&u.x, &u.w, &u.b};
    fi[frozen]->requires_grad_(false);
    ui[frozen]->requires_grad_(false);
    weighted_sum(conv2d(f.x, f.w, f.b, {2}, {1})).backward();
    weighted_sum(composed_conv2d(u.x, u.w, u.b, {2}, {1})).backward();
    for (int i = 0; i < 3; ++i) {
      INFO("input " << i);
      CHECK(fi[i]->grad().defined() == (i != frozen));
      if (i != frozen) CHECK(max_diff(fi[i]->grad(), ui[i]->grad()) < 1e-12);
    }
  }
}

TEST_CASE("conv1d and strided inputs take the fused conv2d", "[conv]") {
  ConvInputs f(23, DType::f64, {2, 3, 1, 11}, {4, 3, 1, 3}), u(23, DType::f64, {2, 3, 1, 11}, {4, 3, 1, 3});
  const Tensor y = conv1d(f.x.squeeze(2), f.w.squeeze(2), f.b, 2, 1);
  CHECK(y.shape() == Shape{2, 4, 6});
  const Tensor want = composed_conv2d(u.x, u.w, u.b, {1, 2}, {0, 1}).squeeze(2);
  CHECK(max_diff(y, want) < 1e-12);
  weighted_sum(y).backward();
  weighted_sum(want).backward();
  CHECK(max_diff(f.x.grad(), u.x.grad()) < 1e-12);
  CHECK(max_diff(f.w.grad(), u.w.grad()) < 1e-12);
  // A non-contiguous input (height and width swapped in memory) gives the
  // same values as its contiguous copy.
  ConvInputs g(25, DType::f64, {2, 3, 5, 7}, {4, 3, 3, 3});
  const Tensor x_t = g.x.detach().transpose(2, 3).contiguous().transpose(2, 3);
  REQUIRE_FALSE(x_t.is_contiguous());
  CHECK(max_diff(conv2d(x_t, g.w, g.b, {2}, {1}), conv2d(g.x.detach(), g.w, g.b, {2}, {1})) == 0.0);
}

TEST_CASE("half convolutions compose on the CPU and stay within bf16 of f32", "[conv]") {
  ConvInputs h(24, DType::bf16, {2, 3, 8, 8}, {4, 3, 2, 2});
  const Tensor y = conv2d(h.x, h.w, h.b, {2}, {0});
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name() != "conv2d");  // the CPU entry takes f32 and f64 only
  const Tensor want = conv2d(h.x.detach().to(DType::f32), h.w.detach().to(DType::f32), h.b.detach().to(DType::f32),
                             {2}, {0});
  CHECK(max_diff(y, want) < 3e-2 * amax(abs(want)).item<double>());
}

TEST_CASE("conv2d names what is wrong", "[conv]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(conv2d(zeros({1, 3, 4, 4}), zeros({2, 2, 3, 3})), Contains("does not match weight"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 3, 4, 4}), zeros({2, 3, 3, 3}), zeros({3})), Contains("bias [3] must be [2]"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 3, 2, 2}), zeros({2, 3, 3, 3})), Contains("conv2d: kernel [3, 3] larger"));
  CHECK_THROWS_WITH(conv2d(zeros({1, 3, 4, 4}), zeros({2, 3, 3, 3}), Tensor(), {0}), Contains("stride must be positive"));
}

TEST_CASE("patch_embed is conv2d with kernel = stride = patch, as tokens", "[conv]") {
  struct Case {
    Shape x, w;
    bool bias;
  };
  // non-square images, several channels, a patch of 1, no bias
  const std::vector<Case> cases = {{{2, 3, 8, 12}, {5, 3, 4, 4}, true},
                                   {{1, 2, 6, 4}, {3, 2, 2, 2}, false},
                                   {{3, 1, 5, 5}, {2, 1, 5, 5}, true},
                                   {{2, 4, 3, 2}, {6, 4, 1, 1}, true}};
  for (DType t : {DType::f64, DType::f32}) {
    for (const Case& c : cases) {
      INFO(dtype_name(t) << " x " << shape_str(c.x) << " w " << shape_str(c.w));
      const double tol = t == DType::f64 ? 1e-12 : 1e-4;
      const int64_t p = c.w[2];
      ConvInputs e(24, t, c.x, c.w), v(24, t, c.x, c.w);
      const Tensor tokens = patch_embed(e.x, e.w, c.bias ? e.b : Tensor());
      const Tensor want = conv2d(v.x, v.w, c.bias ? v.b : Tensor(), {p}, {0}).flatten(2).transpose(1, 2);
      CHECK(tokens.shape() == Shape{c.x[0], (c.x[2] / p) * (c.x[3] / p), c.w[0]});
      CHECK(tokens.is_contiguous());
      check_values_and_gradients(tokens, want, e, v, c.bias, tol);
    }
  }
}

TEST_CASE("patchify orders each patch as a conv2d weight flattens", "[conv]") {
  // x[n, c, h, w] = 1000 n + 100 c + 10 h + w names its own position.
  const Tensor x = add(add(mul(arange(0, 2, 1, DType::f64).reshape({2, 1, 1, 1}), 1000.0),
                           mul(arange(0, 2, 1, DType::f64).reshape({1, 2, 1, 1}), 100.0)),
                       add(mul(arange(0, 4, 1, DType::f64).reshape({1, 1, 4, 1}), 10.0),
                           arange(0, 6, 1, DType::f64).reshape({1, 1, 1, 6})));
  const Tensor rows = patchify(x, 2);  // [2, 2 * 3, 2 * 2 * 2]
  REQUIRE(rows.shape() == Shape{2, 6, 8});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t patch = 0; patch < 6; ++patch)
      for (int64_t k = 0; k < 8; ++k) {
        const int64_t c = k / 4, i = k / 2 % 2, j = k % 2, h = patch / 3 * 2 + i, w = patch % 3 * 2 + j;
        INFO("image " << n << " patch " << patch << " entry " << k);
        CHECK(rows.select(0, n).select(0, patch).select(0, k).item<double>() == 1000 * n + 100 * c + 10 * h + w);
      }
}

TEST_CASE("patchify and patch_embed name what is wrong", "[conv]") {
  using Catch::Contains;
  const Tensor x = randn({2, 3, 8, 8});
  CHECK_THROWS_WITH(patchify(x, 3), Contains("patchify") && Contains("[2, 3, 8, 8]") && Contains("multiples of the patch 3"));
  CHECK_THROWS_WITH(patchify(x, 0), Contains("patch must be positive"));
  CHECK_THROWS_WITH(patchify(randn({3, 8, 8}), 2), Contains("[N, C, H, W]"));
  CHECK_THROWS_WITH(patch_embed(x, randn({4, 2, 4, 4})), Contains("patch_embed") && Contains("[4, 2, 4, 4]"));
  CHECK_THROWS_WITH(patch_embed(x, randn({4, 3, 4, 2})), Contains("square patches"));
  CHECK_THROWS_WITH(patch_embed(x, randn({4, 3, 3, 3})), Contains("multiples of 3") && Contains("[2, 3, 8, 8]"));
  CHECK_THROWS_WITH(patch_embed(x, randn({4, 3, 4, 4}), randn({3})), Contains("bias [3] must be [4]"));
}
