// The flash-attention kernels of cuda/flash_attention.cuh, and of
// cuda/flash_forward_mma.cuh and cuda/flash_backward_mma.cuh (bf16 at head
// dims 16-128, register-resident), compiled for the
// host and run on the SIMT emulator of cuda/simt.cuh, against loom's composed
// attention (matmul, mask, softmax, matmul) differentiated by autograd in
// float64. This is the same kernel source nvcc builds for the device; on a
// GPU, cuda.ops checks the device build against the CPU as well.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "flash_attention_args.hpp"
#include "loom/loom.hpp"

namespace {

using loom::Tensor;

struct Case {
  int bh = 2, lq = 64, lk = 64, d = 32;
  bool causal = false, padding = false;
  int zero_keys_from = -1;  // keys from here on are zero vectors (score 0); -1: none
};

struct Result {
  std::vector<double> out, lse, dq, dk, dv;
};

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Keys kept by the padding mask: head h keeps its first lk - 7h - 3 keys.
std::vector<uint8_t> keep_mask(const Case& c) {
  std::vector<uint8_t> keep(static_cast<size_t>(c.bh) * c.lk, 1);
  if (!c.padding) return keep;
  for (int h = 0; h < c.bh; ++h)
    for (int j = std::max(1, c.lk - 7 * h - 3); j < c.lk; ++j) keep[static_cast<size_t>(h) * c.lk + j] = 0;
  return keep;
}

struct Inputs {
  std::vector<float> q, k, v, dout;  // already representable in the kernel's dtype
  std::vector<uint8_t> keep;
};

template <class T>
Inputs make_inputs(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  Inputs in{random_values(size_t(c.bh) * c.lq * c.d, rng), random_values(size_t(c.bh) * c.lk * c.d, rng),
            random_values(size_t(c.bh) * c.lk * c.d, rng), random_values(size_t(c.bh) * c.lq * c.d, rng),
            keep_mask(c)};
  for (std::vector<float>* v : {&in.q, &in.k, &in.v, &in.dout})
    for (float& x : *v) x = static_cast<float>(T(x));  // round to the kernel's dtype
  if (c.zero_keys_from >= 0)
    for (int h = 0; h < c.bh; ++h)
      for (int j = c.zero_keys_from; j < c.lk; ++j)
        std::fill_n(in.k.begin() + (static_cast<ptrdiff_t>(h) * c.lk + j) * c.d, c.d, 0.0f);
  return in;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// The composed attention in float64 with autograd: out, and the gradients of
// sum(out * dout); lse from the same scores.
Result reference(const Case& c, const Inputs& in) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  Tensor q = loom::from_vector(widen(in.q), {c.bh, c.lq, c.d}, true);
  Tensor k = loom::from_vector(widen(in.k), {c.bh, c.lk, c.d}, true);
  Tensor v = loom::from_vector(widen(in.v), {c.bh, c.lk, c.d}, true);
  Tensor mask;
  if (c.padding) {
    mask = loom::from_vector(std::vector<double>(in.keep.begin(), in.keep.end()), {c.bh, 1, c.lk})
               .to(loom::DType::boolean);
  }
  Tensor out = loom::scaled_dot_product_attention(q, k, v, mask, c.causal, scale);
  Tensor dout = loom::from_vector(widen(in.dout), {c.bh, c.lq, c.d});
  loom::sum(loom::mul(out, dout)).backward();

  Result r{out.to_vector<double>(), {}, q.grad().to_vector<double>(), k.grad().to_vector<double>(),
           v.grad().to_vector<double>()};
  for (int h = 0; h < c.bh; ++h)
    for (int i = 0; i < c.lq; ++i) {
      double m = -INFINITY;
      std::vector<double> s(c.lk, -INFINITY);
      for (int j = 0; j < c.lk; ++j) {
        const bool seen = in.keep[size_t(h) * c.lk + j] && (!c.causal || j <= i + (c.lk - c.lq));
        if (!seen) continue;
        double dot = 0;
        for (int e = 0; e < c.d; ++e)
          dot += double(in.q[(size_t(h) * c.lq + i) * c.d + e]) * double(in.k[(size_t(h) * c.lk + j) * c.d + e]);
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      double l = 0;
      for (double x : s) l += std::exp(x - m);
      r.lse.push_back(m == -INFINITY ? -INFINITY : m + std::log(l));  // no visible key: log 0
    }
  return r;
}

// forward: launches the forward (default: loom's choice, launch_forward).
template <class T>
Result run_kernels(const Case& c, const Inputs& in, std::function<void(const loom::flash::Args&)> forward = {}) {
  auto cast = [](const std::vector<float>& v) { return std::vector<T>(v.begin(), v.end()); };
  std::vector<T> q = cast(in.q), k = cast(in.k), v = cast(in.v), dout = cast(in.dout);
  const T nan = T(std::numeric_limits<float>::quiet_NaN());
  std::vector<T> out(q.size(), nan), dq(q.size(), nan), dk(k.size(), nan), dv(v.size(), nan);
  std::vector<float> lse(size_t(c.bh) * c.lq, NAN), delta(lse.size(), NAN);

  loom::flash::Args a;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.key_keep = c.padding ? in.keep.data() : nullptr;
  a.out = out.data();
  a.lse = lse.data();
  a.grad_out = dout.data();
  a.grad_q = dq.data();
  a.grad_k = dk.data();
  a.grad_v = dv.data();
  a.delta = delta.data();
  a.bh = c.bh;
  a.lq = c.lq;
  a.lk = c.lk;
  a.d = c.d;
  a.causal = c.causal;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d)));
  if (forward)
    forward(a);
  else
    loom::flash::launch_forward<T>(a, {});
  loom::flash::launch_backward<T>(a, {});

  auto to_double = [](const auto& xs) {
    std::vector<double> r;
    for (const auto& x : xs) r.push_back(static_cast<double>(static_cast<float>(x)));
    return r;
  };
  return {to_double(out), to_double(lse), to_double(dq), to_double(dk), to_double(dv)};
}

// max |got - want| <= tol * max(1, max |want|); NaN and infinities must match exactly.
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double scale = 1, worst = 0;
  size_t worst_at = 0;
  for (double w : want)
    if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      INFO(what << "[" << i << "] should be NaN (no visible key), got " << got[i]);
      REQUIRE(std::isnan(got[i]));
      continue;
    }
    INFO(what << "[" << i << "] = " << got[i] << ", want " << want[i]);
    if (std::isinf(want[i])) {
      REQUIRE(got[i] == want[i]);
      continue;
    }
    REQUIRE(std::isfinite(got[i]));
    const double err = std::abs(got[i] - want[i]);
    if (err > worst) worst = err, worst_at = i;
  }
  INFO(what << ": worst error " << worst << " at " << worst_at << " (got " << got[worst_at] << ", want "
            << want[worst_at] << "), allowed " << tol * scale);
  CHECK(worst <= tol * scale);
}

// dv_differs: rows that see no key make the composition's dV NaN (0 * NaN
// in its P^T dout); the kernel's P is 0 there and its dV finite.
template <class T>
void check_case(const Case& c, double tol, bool dv_differs = false) {
  const Inputs in = make_inputs<T>(c, 1234u + static_cast<uint32_t>(c.lq * 7 + c.lk * 3 + c.d));
  const Result want = reference(c, in);
  const Result got = run_kernels<T>(c, in);
  check_close(got.out, want.out, tol, "out");
  check_close(got.lse, want.lse, tol, "lse");
  check_close(got.dq, want.dq, tol, "dq");
  check_close(got.dk, want.dk, tol, "dk");
  if (!dv_differs) check_close(got.dv, want.dv, tol, "dv");
}

constexpr double kF32 = 2e-5;
constexpr double kBf16 = 3e-2;

}  // namespace

TEST_CASE("flash attention f32: partial tiles, no mask", "[flash]") {
  check_case<float>({.bh = 2, .lq = 70, .lk = 70, .d = 32}, kF32);
}

TEST_CASE("flash attention f32: causal across three tiles", "[flash]") {
  check_case<float>({.bh = 2, .lq = 130, .lk = 130, .d = 16, .causal = true}, kF32);
}

TEST_CASE("flash attention f32: key padding, Lq != Lk", "[flash]") {
  check_case<float>({.bh = 3, .lq = 50, .lk = 90, .d = 48, .padding = true}, kF32);
}

TEST_CASE("flash attention f32: causal aligned at the end (KV cache) with padding", "[flash]") {
  check_case<float>({.bh = 2, .lq = 40, .lk = 100, .d = 32, .causal = true, .padding = true}, kF32);
}

TEST_CASE("flash attention f32: rows that see no key are NaN, like the composed softmax", "[flash]") {
  // causal with Lq > Lk: the first Lq - Lk queries see nothing. Their output
  // is NaN, their dq 0, and they add nothing to dk, in both.
  check_case<float>({.bh = 1, .lq = 140, .lk = 40, .d = 16, .causal = true}, kF32, /*dv_differs=*/true);
}

TEST_CASE("flash attention bf16 on the tensor-core path: no mask", "[flash]") {
  check_case<loom::bf16>({.bh = 2, .lq = 70, .lk = 70, .d = 64}, kBf16);
}

TEST_CASE("flash attention bf16 on the tensor-core path: causal with padding", "[flash]") {
  check_case<loom::bf16>({.bh = 2, .lq = 130, .lk = 130, .d = 32, .causal = true, .padding = true}, kBf16);
}

TEST_CASE("flash attention bf16 on the tensor-core path: KV-cache alignment", "[flash]") {
  check_case<loom::bf16>({.bh = 1, .lq = 20, .lk = 83, .d = 16, .causal = true}, kBf16);
}

TEST_CASE("flash attention bf16, head dim 128: register-resident forward over three key tiles", "[flash]") {
  check_case<loom::bf16>({.bh = 1, .lq = 70, .lk = 150, .d = 128, .padding = true}, kBf16);
}

TEST_CASE("flash attention bf16: rows that see no key are NaN through the register-resident forward", "[flash]") {
  check_case<loom::bf16>({.bh = 1, .lq = 140, .lk = 40, .d = 16, .causal = true}, kBf16, /*dv_differs=*/true);
}

TEST_CASE("flash attention bf16: whole blocks of rows that see no key skip the first key fetch", "[flash]") {
  // Causal with Lq - Lk = 260: the first two blocks of 128 query rows see no
  // key at all and take the path with zero key tiles (no fetch, no product;
  // the emulator faults on a read of shared memory never written), the third
  // some. The rows' values are those of masking every key: NaN.
  check_case<loom::bf16>({.bh = 1, .lq = 300, .lk = 40, .d = 16, .causal = true}, kBf16, /*dv_differs=*/true);
}

TEST_CASE("flash attention bf16: key tiles that move no row's max skip the output rescale", "[flash]") {
  // Keys from 64 on score 0, below every row's max over the first 64 random
  // scores (all 64 at or below 0 has odds of 2^-64): from there on no row of
  // a warp finds a new max, and the forward leaves its output rows as they
  // are instead of multiplying them by 1. Random keys take the other branch.
  check_case<loom::bf16>({.bh = 1, .lq = 100, .lk = 200, .d = 64, .zero_keys_from = 64}, kBf16);
  check_case<loom::bf16>({.bh = 1, .lq = 100, .lk = 200, .d = 128, .causal = true, .zero_keys_from = 64}, kBf16);
}

namespace {

// The register-resident forward at tile shape S (loom launches Shape<D>;
// benchmarks/flash_shapes.cu times the others), against the reference.
template <class S>
void check_forward_shape(Case c) {
  c.d = S::kD;
  CAPTURE(S::kRowTiles, S::kKeys, S::kQHeld, c.causal, c.padding);
  const Inputs in = make_inputs<loom::bf16>(c, 99u + static_cast<uint32_t>(S::kKeys + S::kRowTiles));
  const Result want = reference(c, in);
  const Result got = run_kernels<loom::bf16>(
      c, in, [](const loom::flash::Args& a) { loom::flash::mma_forward::launch<S>(a, {}); });
  check_close(got.out, want.out, kBf16, "out");
  check_close(got.lse, want.lse, kBf16, "lse");
}

}  // namespace

TEST_CASE("flash attention bf16 forward at the tile shapes the shape benchmark times", "[flash]") {
  using loom::flash::mma_forward::Shape;
  // Each of the benchmark's departures from loom's shapes once (one row tile;
  // q from shared memory at 64; 32 and 128 keys a tile), causal and padded.
  const Case causal{.bh = 1, .lq = 100, .lk = 100, .causal = true};
  const Case padded{.bh = 1, .lq = 40, .lk = 140, .padding = true};
  for (const Case& c : {causal, padded}) {
    check_forward_shape<Shape<64, 1, 64, true>>(c);
    check_forward_shape<Shape<64, 2, 64, false>>(c);
    check_forward_shape<Shape<64, 1, 128, true>>(c);
    check_forward_shape<Shape<128, 1, 32, true>>(c);
  }
}

namespace {

// The wgmma forward (the kernel variants flash_forward_wgmma and
// flash_forward_wgmma_overlap), then loom's
// backward from its out and lse, against the reference.
// Both forms: plain, and with the products overlapping the softmax.
void check_wgmma_case(const Case& c, bool dv_differs = false) {
  using loom::flash::wgmma_forward::Mode;
  const Inputs in = make_inputs<loom::bf16>(c, 4321u + static_cast<uint32_t>(c.lq * 5 + c.lk + c.d));
  const Result want = reference(c, in);
  for (const Mode mode : {Mode::plain, Mode::overlapped}) {
    CAPTURE(c.lq, c.lk, c.d, c.causal, c.padding, c.zero_keys_from, mode == Mode::overlapped);
    const Result got = run_kernels<loom::bf16>(c, in, [mode](const loom::flash::Args& a) {
      loom::flash::wgmma_forward::launch_by_head_dim(a, {}, mode);
    });
    check_close(got.out, want.out, kBf16, "out");
    check_close(got.lse, want.lse, kBf16, "lse");
    check_close(got.dq, want.dq, kBf16, "dq");
    check_close(got.dk, want.dk, kBf16, "dk");
    if (!dv_differs) check_close(got.dv, want.dv, kBf16, "dv");
  }
}

}  // namespace

TEST_CASE("flash attention bf16 forward on wgmma: partial tiles, masks and both warpgroups", "[flash][wgmma]") {
  // Three key tiles, the last partial; two query blocks, the last partial.
  check_wgmma_case({.bh = 1, .lq = 200, .lk = 300, .d = 64});
  check_wgmma_case({.bh = 2, .lq = 150, .lk = 150, .d = 64, .causal = true, .padding = true});
  check_wgmma_case({.bh = 1, .lq = 150, .lk = 150, .d = 128, .causal = true, .padding = true});
  check_wgmma_case({.bh = 1, .lq = 70, .lk = 260, .d = 128, .causal = true});  // KV-cache alignment
}

TEST_CASE("flash attention bf16 forward on wgmma: rows that see no key, and tiles that move no max", "[flash][wgmma]") {
  // Causal with Lq - Lk = 260: the first two query blocks see no key (zero
  // key tiles), the third some; rows of all-masked keys are NaN.
  check_wgmma_case({.bh = 1, .lq = 300, .lk = 40, .d = 64, .causal = true}, /*dv_differs=*/true);
  // Keys from 128 on score 0: the later tiles skip the output rescale.
  check_wgmma_case({.bh = 1, .lq = 100, .lk = 300, .d = 128, .zero_keys_from = 128});
}

TEST_CASE("flash attention: a scale that is not a positive finite float is declined", "[flash]") {
  // The kernels take the max of the raw scores and fold the scale, as a
  // float, into the exponent, which holds for a positive finite one only
  // (the op passes 1/sqrt(D)); the op composes the rest.
  const auto t = [](int64_t l) { return loom::zeros({1, l, 32}, loom::TensorOptions(loom::DType::bf16)); };
  const Tensor q = t(16), k = t(16), v = t(16), out = t(16);
  const Tensor lse = loom::zeros({1, 16}, loom::TensorOptions(loom::DType::f32));
  const auto forward = [&](double scale) {
    const loom::kernels::AttentionParams p{false, scale, false};
    return loom::flash::run_forward(q, k, v, Tensor(), out, lse, p, loom::simt::kMaxSharedBytes, {},
                                    [](int, const char*) {});
  };
  CHECK(forward(0.125));
  for (const double scale : {0.0, -0.5, 1e-50, 1e39, std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity()}) {
    CAPTURE(scale);
    CHECK_FALSE(forward(scale));  // 1e-50 and 1e39 are 0 and inf as floats
  }
  const Tensor grad = t(16);
  const loom::kernels::AttentionParams zero{false, 0.0, false};
  CHECK_THROWS_WITH(loom::flash::run_backward(q, k, v, Tensor(), out, grad, lse, t(16), t(16), t(16), zero,
                                              loom::simt::kMaxSharedBytes, {}, [](int, const char*) {}),
                    Catch::Contains("attention backward: the forward kernel does not take these inputs") &&
                        Catch::Contains("scale 0"));
}

TEST_CASE("flash attention bf16: a NaN key makes the rows that see it NaN, the others stay finite", "[flash]") {
  // Causal: the queries before the NaN key do not see it, in masked and
  // unmasked tiles alike; the composed softmax in float64 is NaN from it on.
  for (const int d : {64, 128}) {
    Case c{.bh = 1, .lq = 200, .lk = 200, .d = d, .causal = true};
    Inputs in = make_inputs<loom::bf16>(c, 5u);
    in.k[static_cast<size_t>(130) * c.d + 3] = std::numeric_limits<float>::quiet_NaN();
    const Result want = reference(c, in);
    const Result got = run_kernels<loom::bf16>(c, in);
    REQUIRE(std::isnan(want.out[static_cast<size_t>(130) * c.d]));
    REQUIRE(std::isfinite(want.out[static_cast<size_t>(129) * c.d]));
    check_close(got.out, want.out, kBf16, "out");
    check_close(got.lse, want.lse, kBf16, "lse");
  }
}

TEST_CASE("flash attention bf16, head dim 48: the shared-memory forward", "[flash]") {
  check_case<loom::bf16>({.bh = 2, .lq = 70, .lk = 70, .d = 48, .causal = true}, kBf16);
}

TEST_CASE("flash attention bf16 backward, causal without padding: whole tiles take the unmasked path", "[flash]") {
  // Tiles every query of which sees every key, diagonal tiles, and the causal
  // diagonal aligned at the end (Lq != Lk), at head dims 32, 64 and 128.
  check_case<loom::bf16>({.bh = 2, .lq = 200, .lk = 200, .d = 64, .causal = true}, kBf16);
  check_case<loom::bf16>({.bh = 1, .lq = 150, .lk = 230, .d = 128, .causal = true}, kBf16);
  check_case<loom::bf16>({.bh = 2, .lq = 200, .lk = 200, .d = 32, .causal = true}, kBf16);
  check_case<loom::bf16>({.bh = 1, .lq = 130, .lk = 130, .d = 128}, kBf16);
}

TEST_CASE("flash attention: head dims it takes", "[flash]") {
  using loom::flash::supports;
  using loom::flash::takes_head_dim;
  constexpr size_t kH100 = 227 * 1024, kA100 = 163 * 1024;
  CHECK(supports<loom::bf16>(64, kA100));
  CHECK(supports<loom::bf16>(128, kH100));
  CHECK(supports<float>(64, kA100));
  CHECK_FALSE(supports<float>(40, kH100));  // not whole 16-wide tiles
  CHECK_FALSE(supports<float>(512, kH100));
  CHECK_FALSE(supports<float>(256, kH100));  // shared memory
  // bf16 at 128 on an A100: too big for the shared-memory kernels, not for
  // the register-resident ones that run it.
  CHECK_FALSE(supports<loom::bf16>(128, kA100));
  CHECK(takes_head_dim<loom::bf16>(128, kA100));
  CHECK_FALSE(takes_head_dim<float>(128, kA100));
  CHECK(takes_head_dim<loom::bf16>(48, kH100));
}

// ---------------------------------------------------------------------------
// The op layer's fused path: loom::scaled_dot_product_attention on an emulated
// cuda:0 whose table carries the tile kernels, against the CPU's composition.
// ---------------------------------------------------------------------------
namespace {

struct OpRun {
  std::vector<float> out, dq, dk, dv;
  std::string node;  // the output's autograd node: the fused op's own, or the composition's last
};

// q, k, v as [B, H, L, D] views of [B, L, H, D] tensors (what a transformer
// block hands over: not contiguous), the loss sum(out * w).
// `kernel`: the attention kernel to ask for (default: the caller's choice).
OpRun run_op(loom::Device device, const Tensor& mask_cpu, bool causal, bool autocast,
             std::optional<loom::AttentionKernel> kernel = std::nullopt) {
  const int64_t b = 2, h = 3, lq = 70, lk = 70, d = 32;
  loom::Generator gen(7);
  const auto leaf = [&](int64_t l) {
    Tensor t = loom::randn({b, l, h, d}, {}, &gen).to(device);
    t.requires_grad_(true);
    return t;
  };
  Tensor q = leaf(lq), k = leaf(lk), v = leaf(lk);
  Tensor w = loom::randn({b, h, lq, d}, {}, &gen).to(device);
  Tensor mask = mask_cpu.defined() ? mask_cpu.to(device) : Tensor();
  Tensor out;
  {
    std::optional<loom::AttentionKernelGuard> use;
    if (kernel) use.emplace(*kernel);
    loom::AutocastGuard guard(loom::DType::bf16, autocast);
    out = loom::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, causal);
  }
  const std::string node = out.grad_fn()->name();
  loom::sum(loom::mul(out.to(loom::DType::f32), w)).backward();
  REQUIRE(q.grad().dtype() == loom::DType::f32);
  const auto host = [](const Tensor& t) { return t.to(loom::kCPU).to(loom::DType::f32).to_vector<float>(); };
  return {host(out), host(q.grad()), host(k.grad()), host(v.grad()), node};
}

// The reference: the CPU's composition (matmul, mask, softmax, matmul), not its fused kernel.
OpRun composed_on_cpu(const Tensor& mask, bool causal) {
  return run_op(loom::kCPU, mask, causal, false, loom::AttentionKernel::composed);
}

Tensor key_padding_mask() {  // [B, 1, 1, Lk]: batch 1 drops its last 9 keys
  std::vector<double> keep(2 * 70, 1.0);
  for (int j = 61; j < 70; ++j) keep[70 + j] = 0.0;
  return loom::from_vector(keep, {2, 1, 1, 70}).to(loom::DType::boolean);
}

void check_op_close(const OpRun& got, const OpRun& want, double tol) {
  const auto widen_all = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  check_close(widen_all(got.out), widen_all(want.out), tol, "out");
  check_close(widen_all(got.dq), widen_all(want.dq), tol, "dq");
  check_close(widen_all(got.dk), widen_all(want.dk), tol, "dk");
  check_close(widen_all(got.dv), widen_all(want.dv), tol, "dv");
}

}  // namespace

TEST_CASE("attention op takes the fused kernel on the device: causal, key padding, strided inputs", "[flash][op]") {
  const OpRun want = composed_on_cpu(key_padding_mask(), true);
  loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
  const OpRun got = run_op(loom::cuda_device(0), key_padding_mask(), true, false);
  check_op_close(got, want, 1e-4);
  CHECK(got.node == "scaled_dot_product_attention");  // the fused op's own node
  CHECK(want.node != "scaled_dot_product_attention");
}

TEST_CASE("attention op under bf16 autocast runs the tensor-core kernel, gradients return in f32", "[flash][op]") {
  const OpRun want = composed_on_cpu(Tensor(), false);
  OpRun composed, got;
  {
    loom::cuda::HostEmulation emulation(1);  // CPU kernels only: autocast's composition
    composed = run_op(loom::cuda_device(0), Tensor(), false, true, loom::AttentionKernel::composed);
  }
  {
    loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
    got = run_op(loom::cuda_device(0), Tensor(), false, true);
  }
  check_op_close(got, want, kBf16);
  CHECK(got.node == "scaled_dot_product_attention");  // the fused kernel ran, not the bf16 composition
  CHECK(composed.node != "scaled_dot_product_attention");
}

TEST_CASE("attention op composes where the kernel declines: a mask that varies by query", "[flash][op]") {
  std::vector<double> allowed(70 * 70);
  for (int i = 0; i < 70; ++i)
    for (int j = 0; j < 70; ++j) allowed[i * 70 + j] = (i + j) % 3 != 0 || j == i;
  const Tensor mask = loom::from_vector(allowed, {70, 70}).to(loom::DType::boolean);
  const OpRun want = composed_on_cpu(mask, false);
  loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
  const OpRun got = run_op(loom::cuda_device(0), mask, false, false);
  CHECK(got.node != "scaled_dot_product_attention");  // composed: matmul, mask, softmax (emulated), matmul
  check_op_close(got, want, kF32);
}

TEST_CASE("AttentionKernelGuard picks the kernel, and asking for one the device lacks names it", "[flash][op]") {
  using loom::AttentionKernel;
  using loom::AttentionKernelGuard;
  using Catch::Matchers::Contains;
  const OpRun want = composed_on_cpu(key_padding_mask(), true);
  loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
  OpRun composed, fused;
  {
    AttentionKernelGuard guard(AttentionKernel::composed);
    CHECK(loom::attention_kernel() == AttentionKernel::composed);
    composed = run_op(loom::cuda_device(0), key_padding_mask(), true, false);
    {
      AttentionKernelGuard inner(AttentionKernel::fused);
      fused = run_op(loom::cuda_device(0), key_padding_mask(), true, false);
    }
    CHECK(loom::attention_kernel() == AttentionKernel::composed);  // the inner guard restored the outer choice
  }
  CHECK(loom::attention_kernel() == AttentionKernel::automatic);
  CHECK(composed.node != "scaled_dot_product_attention");
  CHECK(fused.node == "scaled_dot_product_attention");
  check_op_close(composed, want, kF32);
  check_op_close(fused, want, 1e-4);

  // The emulated table has no vendor attention (cuDNN's is CUDA's only).
  {
    AttentionKernelGuard guard(AttentionKernel::vendor);
    CHECK_THROWS_WITH(run_op(loom::cuda_device(0), Tensor(), false, false),
                      Contains("vendor kernel was asked for") && Contains("backend of cuda:0 has none") &&
                          Contains("q f32 [2, 3, 70, 32]"));
  }
  // The fused kernel declines a mask that varies by query: asked for, that is an error, not a silent composition.
  std::vector<double> allowed(70 * 70);
  for (int i = 0; i < 70; ++i)
    for (int j = 0; j < 70; ++j) allowed[i * 70 + j] = (i + j) % 3 != 0 || j == i;
  const Tensor mask = loom::from_vector(allowed, {70, 70}).to(loom::DType::boolean);
  AttentionKernelGuard guard(AttentionKernel::fused);
  CHECK_THROWS_WITH(run_op(loom::cuda_device(0), mask, false, false),
                    Contains("fused kernel was asked for") && Contains("does not take these inputs") &&
                        Contains("mask [70, 70]"));
}
