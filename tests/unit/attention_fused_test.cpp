// scaled_dot_product_attention through the CPU backend's fused kernel
// (query blocks, no [Lq, Lk] scores in memory) against the composition
// (matmul, mask, softmax, matmul) in float64 on the same values: the output
// and all three gradients, every mask, blocks cut mid-way, halves, rows that
// see no key, and the same bits on any number of threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {

struct Case {
  Shape q, kv;      // [..., Lq, D] and [..., Lk, D]
  bool causal = false;
  Shape mask = {};  // broadcastable to [..., 1, Lk]; empty: none
  int hidden_per_head = 0;  // the mask hides the last 7 h + this many keys of head h (the first key always kept)
};

struct Run {
  Tensor out, dq, dk, dv;
};

// Inputs drawn in f64 and rounded to `t`, so the reference sees exactly the values the kernel sees.
struct Inputs {
  Tensor q, k, v, dout, mask;
  Inputs(const Case& c, DType t, uint64_t seed) {
    Generator gen(seed);
    q = randn(c.q, DType::f64, &gen).to(t).to(DType::f64);
    k = randn(c.kv, DType::f64, &gen).to(t).to(DType::f64);
    v = randn(c.kv, DType::f64, &gen).to(t).to(DType::f64);
    dout = randn(c.q, DType::f64, &gen).to(t).to(DType::f64);
    if (!c.mask.empty()) {
      const int64_t lk = c.mask.back(), heads = numel(c.mask) / lk;
      std::vector<double> keep(static_cast<size_t>(heads * lk), 1.0);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = std::max<int64_t>(1, lk - 7 * h - c.hidden_per_head); j < lk; ++j)
          keep[static_cast<size_t>(h * lk + j)] = 0.0;
      mask = from_vector(keep, c.mask).to(DType::boolean);
    }
  }
};

Run run(const Case& c, const Inputs& in, DType t, AttentionKernel kernel) {
  const auto leaf = [t](const Tensor& x) { return x.detach().to(t).requires_grad_(); };
  Tensor q = leaf(in.q), k = leaf(in.k), v = leaf(in.v);
  Tensor out;
  {
    AttentionKernelGuard use(kernel);
    out = scaled_dot_product_attention(q, k, v, in.mask, c.causal);
  }
  sum(mul(out.to(DType::f64), in.dout)).backward();
  return {out.to(DType::f64), q.grad().to(DType::f64), k.grad().to(DType::f64), v.grad().to(DType::f64)};
}

// max |got - want| <= tol * max(1, max |want|) over the finite values; NaN where and only where want is NaN.
void check_close(const Tensor& got_t, const Tensor& want_t, double tol, const std::string& what) {
  const std::vector<double> got = got_t.to_vector<double>(), want = want_t.to_vector<double>();
  REQUIRE(got.size() == want.size());
  double scale = 1, worst = 0;
  for (double w : want)
    if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(what << "[" << i << "] = " << got[i] << ", want " << want[i]);
    if (std::isnan(want[i])) {
      REQUIRE(std::isnan(got[i]));
      continue;
    }
    REQUIRE(std::isfinite(got[i]));
    worst = std::max(worst, std::abs(got[i] - want[i]));
  }
  INFO(what << ": worst error " << worst << ", allowed " << tol * scale);
  CHECK(worst <= tol * scale);
}

// dv_differs: rows that see no key make the composition's dV NaN (0 * NaN in
// its Pᵀ dout); the kernel adds nothing for them, so its dV stays finite.
void check_case(const Case& c, DType t, double tol, bool dv_differs = false) {
  const Inputs in(c, t, 42);
  const Run want = run(c, in, DType::f64, AttentionKernel::composed);
  const Run got = run(c, in, t, AttentionKernel::fused);
  check_close(got.out, want.out, tol, "out");
  check_close(got.dq, want.dq, tol, "dq");
  check_close(got.dk, want.dk, tol, "dk");
  if (dv_differs) {
    REQUIRE(std::isfinite(sum(got.dv).item<double>()));
  } else {
    check_close(got.dv, want.dv, tol, "dv");
  }
}

constexpr double kF32 = 2e-5;
constexpr double kHalf = 3e-2;

}  // namespace

TEST_CASE("fused attention (CPU): two query blocks and a partial one, no mask", "[attention]") {
  check_case({{2, 1, 150, 20}, {2, 1, 150, 20}}, DType::f32, kF32);
}

TEST_CASE("fused attention (CPU): sequences over 256, products cut into pieces (and depth over one GEMM block)",
          "[attention]") {
  check_case({{1, 300, 16}, {1, 600, 16}, false, {1, 1, 600}, 5}, DType::f32, kF32);
  check_case({{1, 290, 8}, {1, 290, 8}, true}, DType::f32, kF32);
  check_case({{1, 60, 8}, {1, 1100, 8}}, DType::f32, kF32);  // P v and dS k sum over 1100 keys
}

TEST_CASE("fused attention (CPU): causal across three blocks", "[attention]") {
  check_case({{1, 2, 130, 16}, {1, 2, 130, 16}, true}, DType::f32, kF32);
}

TEST_CASE("fused attention (CPU): key padding, Lq != Lk", "[attention]") {
  check_case({{3, 50, 48}, {3, 90, 48}, false, {3, 1, 90}, 3}, DType::f32, kF32);
}

TEST_CASE("fused attention (CPU): causal aligned at the end (KV cache) with padding", "[attention]") {
  check_case({{2, 1, 40, 32}, {2, 1, 100, 32}, true, {2, 1, 1, 100}, 3}, DType::f32, kF32);
}

TEST_CASE("fused attention (CPU): one query against a KV cache (a decoding step), and a last block of one row",
          "[attention]") {
  check_case({{2, 1, 1, 32}, {2, 1, 300, 32}, true}, DType::f32, kF32);
  check_case({{1, 2, 1, 16}, {1, 2, 45, 16}, false, {1, 1, 1, 45}, 4}, DType::f32, kF32);
  check_case({{1, 55, 8}, {1, 55, 8}, true}, DType::f32, kF32);  // 54 + 1 rows on AVX2, 56 in one on AVX-512
}

TEST_CASE("fused attention (CPU): causal with Lq > Lk, the first queries see no key", "[attention]") {
  check_case({{2, 100, 24}, {2, 30, 24}, true}, DType::f32, kF32, true);
  // Every query of the first block sees nothing: NaN outputs there.
  const Inputs in({{1, 90, 8}, {1, 10, 8}, true}, DType::f32, 7);
  const Run got = run({{1, 90, 8}, {1, 10, 8}, true}, in, DType::f32, AttentionKernel::fused);
  for (double x : got.out.narrow(1, 0, 80).to_vector<double>()) REQUIRE(std::isnan(x));
  for (double x : got.out.narrow(1, 80, 10).to_vector<double>()) REQUIRE(std::isfinite(x));
}

TEST_CASE("fused attention (CPU): a padding mask that hides every key of a head", "[attention]") {
  // Head 0 sees every key, head 1 none.
  Case c{{2, 70, 16}, {2, 70, 16}, false, {2, 1, 70}, 0};
  Inputs in(c, DType::f32, 9);
  in.mask = cat({ones({1, 1, 70}, DType::boolean), zeros({1, 1, 70}, DType::boolean)}, 0);
  const Run want = run(c, in, DType::f64, AttentionKernel::composed);
  const Run got = run(c, in, DType::f32, AttentionKernel::fused);
  check_close(got.out, want.out, kF32, "out");
  check_close(got.dq, want.dq, kF32, "dq");
  check_close(got.dk, want.dk, kF32, "dk");
  for (double x : got.dv.narrow(0, 1, 1).to_vector<double>()) REQUIRE(x == 0.0);  // no query sees these keys
}

TEST_CASE("fused attention (CPU): bf16 and f16 compute in f32 and round once", "[attention]") {
  check_case({{2, 2, 96, 64}, {2, 2, 96, 64}, true}, DType::bf16, kHalf);
  check_case({{1, 3, 70, 32}, {1, 3, 80, 32}, false, {1, 3, 1, 80}, 2}, DType::f16, kHalf);
}

TEST_CASE("fused attention (CPU): the same bits on one thread and on two", "[attention]") {
  const Case c{{3, 2, 140, 32}, {3, 2, 140, 32}, true};
  const Inputs in(c, DType::f32, 5);
  const int before = num_threads();
  set_num_threads(1);
  const Run one = run(c, in, DType::f32, AttentionKernel::fused);
  set_num_threads(2);
  const Run two = run(c, in, DType::f32, AttentionKernel::fused);
  set_num_threads(before);
  CHECK(one.out.to_vector<double>() == two.out.to_vector<double>());
  CHECK(one.dq.to_vector<double>() == two.dq.to_vector<double>());
  CHECK(one.dk.to_vector<double>() == two.dk.to_vector<double>());
  CHECK(one.dv.to_vector<double>() == two.dv.to_vector<double>());
}

TEST_CASE("fused attention (CPU): taken by default where it is faster, f64 composes", "[attention]") {
  Generator gen(3);
  const auto node = [](const Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string("(leaf)"); };
  const Tensor q = randn({2, 4, 70, 16}, DType::f32, &gen).requires_grad_();
  // Causal: always. Without any mask: from 2^28 scores in the call (the
  // composition is faster; beyond that its score tensors take gigabytes).
  CHECK(node(scaled_dot_product_attention(q, q, q, Tensor(), true)) == "scaled_dot_product_attention");
  CHECK(node(scaled_dot_product_attention(q, q, q)) != "scaled_dot_product_attention");
  // With a key mask: always (the composition's masked_fill costs a pass each way).
  const Tensor keep = ones({2, 1, 1, 70}, DType::boolean);
  CHECK(node(scaled_dot_product_attention(q, q, q, keep)) == "scaled_dot_product_attention");
  const Tensor long_q = randn({1, 16384, 8}, DType::f32, &gen).requires_grad_();  // 2^28
  CHECK(node(scaled_dot_product_attention(long_q, long_q, long_q)) == "scaled_dot_product_attention");
  {
    AttentionKernelGuard fused(AttentionKernel::fused);  // asked for: taken at any size
    CHECK(node(scaled_dot_product_attention(q, q, q)) == "scaled_dot_product_attention");
  }
  const Tensor q64 = q.detach().to(DType::f64).requires_grad_();
  const Tensor out64 = scaled_dot_product_attention(q64, q64, q64, Tensor(), true);
  REQUIRE(out64.grad_fn());
  CHECK(out64.grad_fn()->name() != "scaled_dot_product_attention");
  AttentionKernelGuard fused(AttentionKernel::fused);
  CHECK_THROWS_WITH(scaled_dot_product_attention(q64, q64, q64), Contains("fused kernel was asked for") &&
                                                                     Contains("does not take these inputs") &&
                                                                     Contains("f64"));
}

// self_attention over a fused [B, T, 3·D] projection against the split,
// the head views and scaled_dot_product_attention written out by hand, in
// float64: values and qkv's gradient, causal and with a key mask.
TEST_CASE("self_attention equals splitting qkv into heads and attending", "[attention]") {
  const int64_t b = 2, t = 9, heads = 3, hd = 4, d = heads * hd;
  Generator gen(5);
  const Tensor qkv_values = randn({b, t, 3 * d}, DType::f64, &gen);
  const Tensor dout = randn({b, t, d}, DType::f64, &gen);
  std::vector<double> keep_values(static_cast<size_t>(b * t), 1.0);
  for (int64_t j = 6; j < t; ++j) keep_values[static_cast<size_t>(t + j)] = 0.0;  // batch 1 hides its last 3 keys
  const Tensor keep = from_vector(keep_values, {b, 1, 1, t}).to(DType::boolean);
  for (const bool causal : {false, true})
    for (const bool masked : {false, true}) {
      INFO((causal ? "causal" : "not causal") << (masked ? ", key mask" : ""));
      const Tensor mask = masked ? keep : Tensor();
      const Tensor qkv = qkv_values.detach().requires_grad_();
      const Tensor got = self_attention(qkv, heads, mask, causal);
      sum(mul(got, dout)).backward();

      const Tensor qkv_ref = qkv_values.detach().requires_grad_();
      const auto part = [&](int64_t i) {
        return qkv_ref.narrow(2, i * d, d).reshape({b, t, heads, hd}).transpose(1, 2);
      };
      const Tensor want = scaled_dot_product_attention(part(0), part(1), part(2), mask, causal)
                              .transpose(1, 2)
                              .reshape({b, t, d});
      sum(mul(want, dout)).backward();
      REQUIRE(got.shape() == Shape{b, t, d});
      CHECK(amax(abs(sub(got, want))).item<double>() < 1e-12);
      CHECK(amax(abs(sub(qkv.grad(), qkv_ref.grad()))).item<double>() < 1e-12);
    }
}

TEST_CASE("self_attention names a qkv it cannot split", "[attention]") {
  const Tensor qkv = zeros({2, 5, 30});
  CHECK_THROWS_WITH(self_attention(qkv, 4), Contains("[B, T, 3 * D]") && Contains("heads (4)") &&
                                                Contains("[2, 5, 30]"));
  CHECK_THROWS_WITH(self_attention(zeros({5, 30}), 5), Contains("[5, 30]"));
}
