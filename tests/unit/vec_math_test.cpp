// The vectorisable float exp / tanh / erf (src/cpu/vec_math.hpp) and the row
// exp of src/cpu/exp_row.hpp (AVX-512 where the build has it) against
// libm in double over dense sweeps and special values, and the f32 fast paths
// of the memory-bound kernels (softmax, norms, gelu, cross-entropy, AdamW)
// against the same ops run in f64, at row lengths around the 16-lane width
// and on strided inputs that take the general loops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include <loom/loom.hpp>

#include "../../src/cpu/exp_row.hpp"
#include "../../src/cpu/vec_math.hpp"

using namespace loom;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kDenormMin = std::numeric_limits<float>::denorm_min();

// Largest relative error of f against ref over floats [lo, hi] (every
// `stride`-th bit pattern of each sign, so all magnitudes are covered).
// Results in the denormal range count relative to the smallest normal float
// (where float itself has fewer digits), and errors below `abs_floor` are
// ignored.
double max_rel_error(float (*f)(float), double (*ref)(double), float lo, float hi, uint32_t stride,
                     double abs_floor = 0) {
  double worst = 0;
  for (uint32_t sign : {0u, 0x80000000u})
    for (uint32_t bits = 0; bits < 0x7F800000u; bits += stride) {
      const uint32_t b = bits | sign;
      float x;
      std::memcpy(&x, &b, 4);
      if (x < lo || x > hi) continue;
      const double r = ref(x);
      const double err = std::fabs(static_cast<double>(f(x)) - r);
      if (err <= abs_floor) continue;
      worst = std::max(worst, err / std::max(std::fabs(r), double(std::numeric_limits<float>::min())));
    }
  return worst;
}

double ref_exp(double x) { return std::exp(x); }
double ref_tanh(double x) { return std::tanh(x); }
double ref_erf(double x) { return std::erf(x); }

// Every element of a (f32) within rtol relative + 1e-6 of max|b| + atol of b (f64).
void check_close(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 0) {
  REQUIRE(a.shape() == b.shape());
  const auto av = a.to(DType::f64).to_vector<double>();
  const auto bv = b.to_vector<double>();
  double scale = 0;
  for (double v : bv) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < av.size(); ++i) {
    INFO("element " << i << " of " << av.size());
    REQUIRE(std::fabs(av[i] - bv[i]) <= rtol * std::fabs(bv[i]) + 1e-6 * scale + atol);
  }
}

// Runs f on f32 inputs and on the same values in f64, backward with the same
// output gradient, and compares the outputs and every input gradient. atol
// covers values that are 0 in exact arithmetic but rounding noise in f32
// (e.g. 1 - y^2 from a saved tanh y near 1, or a one-column norm's gradient).
void check_against_f64(const std::vector<Tensor>& inputs32, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                       double rtol = 1e-5, double atol = 0) {
  std::vector<Tensor> in32, in64;
  for (const Tensor& t : inputs32) {
    in32.push_back(t.detach().requires_grad_());
    in64.push_back(t.to(DType::f64).detach().requires_grad_());
  }
  Tensor y32 = f(in32), y64 = f(in64);
  check_close(y32, y64, rtol, atol);
  Tensor dy = randn(y32.shape());
  y32.backward(dy);
  y64.backward(dy.to(DType::f64));
  for (size_t i = 0; i < in32.size(); ++i) {
    INFO("gradient of input " << i);
    check_close(in32[i].grad(), in64[i].grad(), rtol, atol);
  }
}

}  // namespace

namespace {

// The row exp as loom runs it here (AVX-512 where the build has it) and its
// portable body, which a machine without AVX-512 runs.
using RowSum = double (*)(const float*, float*, int64_t, float);
using RowAffine = void (*)(const float*, float*, int64_t, float, float, float);
const std::pair<const char*, std::pair<RowSum, RowAffine>> kRowExps[] = {
    {"exp_row", {cpu::exp_row_sum<float>, cpu::exp_row_affine<float>}},
    {"portable", {cpu::detail::exp_row_sum_lanes<float>, cpu::detail::exp_row_affine_lanes<float>}}};

// row_sum over floats of [lo, hi] (every stride-th bit pattern of each sign),
// in rows of `row` elements shifted by `shift`: the largest error of a stored
// term, as max_rel_error counts it, and of a row's sum, relative.
std::pair<double, double> row_exp_errors(RowSum row_sum, float lo, float hi, uint32_t stride, int64_t row,
                                         float shift, double abs_floor = 0) {
  std::vector<float> xs;
  for (uint32_t sign : {0u, 0x80000000u})
    for (uint32_t bits = 0; bits < 0x7F800000u; bits += stride) {
      const uint32_t b = bits | sign;
      float x;
      std::memcpy(&x, &b, 4);
      if (x - shift >= lo && x - shift <= hi) xs.push_back(x);
    }
  double worst = 0, worst_sum = 0;
  std::vector<float> out(static_cast<size_t>(row));
  for (size_t i = 0; i + static_cast<size_t>(row) <= xs.size(); i += static_cast<size_t>(row)) {
    const double sum = row_sum(xs.data() + i, out.data(), row, shift);
    double want_sum = 0;
    for (int64_t k = 0; k < row; ++k) {
      const double r = std::exp(static_cast<double>(xs[i + k] - shift));  // the shift is a float subtraction
      want_sum += r;
      const double err = std::fabs(static_cast<double>(out[k]) - r);
      if (err > abs_floor)
        worst = std::max(worst, err / std::max(std::fabs(r), double(std::numeric_limits<float>::min())));
    }
    // Sums in float lanes: rows that near float's largest value may overflow.
    if (want_sum > 1e-30 && want_sum < 1e36) worst_sum = std::max(worst_sum, std::fabs(sum - want_sum) / want_sum);
  }
  return {worst, worst_sum};
}

}  // namespace

TEST_CASE("exp_row_sum and exp_row_affine match libm over the float range at every row length", "[vec_math]") {
  for (const auto& [name, fns] : kRowExps) {
    const auto [row_sum, row_affine] = fns;
    CAPTURE(name);
    // Rows of 37 take the two-block body, a whole block and a partial one;
    // shifted inputs as softmax shifts them by the row max.
    for (const float shift : {0.0f, 3.5f}) {
      CAPTURE(shift);
      const auto [term, sum] = row_exp_errors(row_sum, -87.33f, 88.72f, 389, 37, shift);
      CHECK(term < 2e-7);
      CHECK(sum < 1e-6);
      CHECK(row_exp_errors(row_sum, -104.0f, -87.33f, 389, 37, shift, 2.0 * kDenormMin).first == 0);
    }
    // Every length up to 70: the sum and each term against exp(x - shift).
    std::vector<float> x(70), out(70, -1.0f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.37f * static_cast<float>(i) - 11.0f;
    for (int64_t n = 0; n <= 70; ++n) {
      CAPTURE(n);
      std::fill(out.begin(), out.end(), -1.0f);
      const double sum = row_sum(x.data(), out.data(), n, 2.0f);
      double want = 0;
      for (int64_t k = 0; k < n; ++k) {
        const double r = std::exp(static_cast<double>(x[k] - 2.0f));
        want += r;
        CHECK(out[k] == Approx(r).epsilon(2e-7));
      }
      for (int64_t k = n; k < 70; ++k) CHECK(out[k] == -1.0f);  // nothing past the row written
      CHECK(sum == Approx(want).epsilon(1e-6));
      CHECK(row_sum(x.data(), nullptr, n, 2.0f) == sum);  // summing only: the same sum
      // a e^(x - shift) + b, as the cross-entropy gradient takes it, in place
      std::vector<float> y(x.begin(), x.end());
      row_affine(y.data(), y.data(), n, 2.0f, 0.7f, -0.02f);
      for (int64_t k = 0; k < n; ++k) {
        const double r = 0.7 * std::exp(static_cast<double>(x[k] - 2.0f)) - 0.02;
        CHECK(y[k] == Approx(r).epsilon(3e-7).margin(1e-8));
      }
      for (int64_t k = n; k < 70; ++k) CHECK(y[k] == x[k]);
    }
    // Special values, in place.
    const std::vector<float> special = {-kInf, kInf, std::nanf(""), 88.8f, -105.0f, -103.0f, 0.0f, 88.72f};
    std::vector<float> v = special;
    const double total = row_sum(v.data(), v.data(), static_cast<int64_t>(v.size()), 0.0f);
    CHECK(v[0] == 0.0f);
    CHECK(v[1] == kInf);
    CHECK(std::isnan(v[2]));
    CHECK(v[3] == kInf);
    CHECK(v[4] == 0.0f);
    CHECK(v[5] > 0.0f);  // denormal, not flushed
    CHECK(v[6] == 1.0f);
    CHECK(v[7] == Approx(std::exp(88.72f)).epsilon(2e-7));
    CHECK(std::isnan(total));
    v = special;
    row_affine(v.data(), v.data(), static_cast<int64_t>(v.size()), 0.0f, 2.0f, 1.0f);
    CHECK(v[0] == 1.0f);
    CHECK(v[1] == kInf);
    CHECK(std::isnan(v[2]));
    CHECK(v[6] == 3.0f);
  }
}

namespace {

// Σ e^(x − shift) in double, shift the row's maximum (0 for an empty or
// all -inf row), as shifted_exp_sum defines them.
std::pair<double, double> shifted_exp_sum_reference(const std::vector<float>& x) {
  double mx = -std::numeric_limits<double>::infinity();
  for (const float v : x) mx = std::max(mx, static_cast<double>(v));
  const double shift = mx == -std::numeric_limits<double>::infinity() ? 0.0 : mx;
  double sum = 0;
  for (const float v : x) sum += std::exp(static_cast<double>(v) - shift);
  return {shift, sum};
}

}  // namespace

TEST_CASE("shifted_exp_sum is a row's log-sum-exp in one pass at every length", "[vec_math]") {
  using Fn = cpu::ShiftedExpSum<float> (*)(const float*, int64_t);
  const std::pair<const char*, Fn> kinds[] = {{"shifted_exp_sum", cpu::shifted_exp_sum<float>},
                                              {"portable", cpu::detail::shifted_exp_sum_lanes<float>}};
  const std::vector<float> noise = mul(randn({4200}), 4.0).to_vector<float>();
  for (const auto& [name, fn] : kinds) {
    CAPTURE(name);
    std::vector<int64_t> lengths;
    for (int64_t n = 0; n <= 400; ++n) lengths.push_back(n);  // one and several blocks, every tail
    for (int64_t n : {1000, 1024, 4095, 4096, 4111}) lengths.push_back(n);
    for (const int64_t n : lengths) {
      CAPTURE(n);
      // Random rows, rows whose maximum rises in every block (each block
      // rescales the lanes' sums), and rows whose maximum comes first.
      std::vector<float> random(noise.begin(), noise.begin() + n), rising(static_cast<size_t>(n)),
          falling(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) {
        rising[k] = 0.05f * static_cast<float>(k) + 0.3f * noise[k];
        falling[k] = -rising[k];
      }
      for (const auto* row : {&random, &rising, &falling}) {
        const cpu::ShiftedExpSum<float> got = fn(row->data(), n);
        const auto [shift, sum] = shifted_exp_sum_reference(*row);
        CHECK(got.shift == shift);
        CHECK(got.sum == Approx(sum).epsilon(2e-6).margin(n == 0 ? 0 : 1e-300));
      }
    }
  }
  // Masked entries (-inf), NaN and inf, at lengths of one block and several.
  const float nan = std::nanf("");
  for (const auto& [name, fn] : kinds) {
    CAPTURE(name);
    for (const int64_t n : {7, 130, 300, 1000}) {
      CAPTURE(n);
      std::vector<float> row(static_cast<size_t>(n), -kInf);
      auto [shift, sum] = [&] {
        const cpu::ShiftedExpSum<float> e = fn(row.data(), n);
        return std::pair<double, double>(e.shift, e.sum);
      }();
      CHECK(shift == 0.0);  // a fully masked row: log-sum-exp -inf
      CHECK(sum == 0.0);
      // The last entries only: lanes that saw -inf for blocks, then values.
      for (int64_t k = n - 5; k < n; ++k) row[k] = noise[k];
      const cpu::ShiftedExpSum<float> tail = fn(row.data(), n);
      const auto want = shifted_exp_sum_reference(row);
      CHECK(tail.shift == want.first);
      CHECK(tail.sum == Approx(want.second).epsilon(1e-6));
      // A first block of -inf before large negative values (e^(0 − max)
      // overflows: the masked lanes must add e^(-inf), not 0 · inf).
      if (n >= 256) {
        std::vector<float> low(static_cast<size_t>(n), -100.0f);
        std::fill(low.begin(), low.begin() + 128, -kInf);
        const cpu::ShiftedExpSum<float> e = fn(low.data(), n);
        CHECK(e.shift == -100.0f);
        CHECK(e.sum == Approx(static_cast<double>(n - 128)).epsilon(1e-6));
      }
      // Every other entry masked.
      for (int64_t k = 0; k < n; ++k) row[k] = k % 2 ? -kInf : noise[k];
      const cpu::ShiftedExpSum<float> half = fn(row.data(), n);
      const auto half_want = shifted_exp_sum_reference(row);
      CHECK(half.shift == half_want.first);
      CHECK(half.sum == Approx(half_want.second).epsilon(2e-6));
      // A NaN anywhere makes the sum NaN; the shift stays a number of the row.
      for (const int64_t at : {int64_t{0}, n / 2, n - 1}) {
        std::vector<float> with_nan(noise.begin(), noise.begin() + n);
        with_nan[at] = nan;
        const cpu::ShiftedExpSum<float> e = fn(with_nan.data(), n);
        CHECK(std::isnan(e.sum));
        CHECK(std::find(with_nan.begin(), with_nan.end(), e.shift) != with_nan.end());
      }
      std::vector<float> with_inf(noise.begin(), noise.begin() + n);
      with_inf[n / 3] = kInf;
      const cpu::ShiftedExpSum<float> e = fn(with_inf.data(), n);
      CHECK(e.shift == kInf);
      CHECK(std::isnan(e.sum));  // e^(inf − inf), as the two passes give it
    }
  }
}

TEST_CASE("softmax_row_one_pass matches softmax in double, in place too, and declines other rows", "[vec_math]") {
#if defined(__AVX512F__)
  constexpr bool kTakes = true;
#else
  constexpr bool kTakes = false;  // the portable build: every row goes to softmax's passes
#endif
  const std::vector<float> noise = mul(randn({8300}), 4.0).to_vector<float>();
  std::vector<int64_t> lengths;
  for (int64_t n = 256; n <= 530; ++n) lengths.push_back(n);  // two to five blocks, every tail
  for (int64_t n : {1000, 1024, 4095, 8191, 8192}) lengths.push_back(n);
  for (const int64_t n : lengths) {
    CAPTURE(n);
    std::vector<float> rising(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) rising[k] = 0.05f * static_cast<float>(k) + 0.3f * noise[k];
    for (const std::vector<float>& row : {std::vector<float>(noise.begin(), noise.begin() + n), rising}) {
      std::vector<float> out(static_cast<size_t>(n) + 128, -7.0f);  // a block's reach past the row
      REQUIRE(cpu::softmax_row_one_pass(row.data(), out.data(), n) == kTakes);
      if (!kTakes) continue;
      const auto [shift, sum] = shifted_exp_sum_reference(row);
      for (int64_t k = 0; k < n; ++k) {
        // e^(x − max) in float rounds x − max, relatively 2^-24 |x − max| of
        // the result; here x − lane max and lane max − row max are rounded.
        // Results below float's normal range count absolutely.
        const double arg = static_cast<double>(row[k]) - shift, want = std::exp(arg) / sum;
        if (std::fabs(out[k] - want) > (2e-6 + 1.2e-7 * std::fabs(arg)) * want + 1.2e-38)
          FAIL_CHECK("element " << k << ": " << out[k] << " vs " << want);
      }
      for (size_t k = static_cast<size_t>(n); k < out.size(); ++k) CHECK(out[k] == -7.0f);  // nothing past the row
      std::vector<float> in_place = row;
      REQUIRE(cpu::softmax_row_one_pass(in_place.data(), in_place.data(), n));
      CHECK(std::equal(in_place.begin(), in_place.end(), out.begin()));
    }
  }
  // Rows of one block, and of more than 64, are declined with nothing written.
  for (const int64_t n : {0, 1, 128, 255, 8193}) {
    CAPTURE(n);
    std::vector<float> row(static_cast<size_t>(n), 0.5f), out(static_cast<size_t>(n), -7.0f);
    CHECK_FALSE(cpu::softmax_row_one_pass(row.data(), out.data(), n));
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == -7.0f; }));
  }
  if (!kTakes) return;
  // Lanes that see only -inf for a block or more, in a row of large negative
  // scores (e^(0 − max) overflows: the masked terms must scale by e^(-inf)).
  for (const int64_t masked : {int64_t{16}, int64_t{3}, int64_t{1}}) {
    CAPTURE(masked);
    std::vector<float> row(256, -100.0f), out(256);
    for (int64_t k = 0; k < 128; ++k)
      if (k % 16 < masked) row[k] = -kInf;  // the first block's first `masked` lanes (16: all of it)
    REQUIRE(cpu::softmax_row_one_pass(row.data(), out.data(), 256));
    const double visible = static_cast<double>(std::count(row.begin(), row.end(), -100.0f));
    for (size_t k = 0; k < row.size(); ++k) {
      CAPTURE(k);
      if (row[k] == -kInf)
        CHECK(out[k] == 0.0f);
      else
        CHECK(out[k] == Approx(1.0 / visible).epsilon(1e-6));
    }
  }
  // As softmax's passes: a fully masked row gives NaN, masked entries 0, a NaN or inf anywhere NaN.
  std::vector<float> row(300, -kInf), out(300);
  REQUIRE(cpu::softmax_row_one_pass(row.data(), out.data(), 300));
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return std::isnan(v); }));
  for (size_t k = 0; k < row.size(); k += 3) row[k] = noise[k];
  REQUIRE(cpu::softmax_row_one_pass(row.data(), out.data(), 300));
  double total = 0;
  for (size_t k = 0; k < row.size(); ++k) {
    if (k % 3) CHECK(out[k] == 0.0f);
    total += out[k];
  }
  CHECK(total == Approx(1.0).epsilon(1e-6));
  for (const float bad : {std::nanf(""), kInf}) {
    std::vector<float> with_bad(noise.begin(), noise.begin() + 300);
    with_bad[150] = bad;
    REQUIRE(cpu::softmax_row_one_pass(with_bad.data(), out.data(), 300));
    CHECK(std::isnan(out[150]));
    CHECK(std::isnan(out[0]));
  }
}

TEST_CASE("vec::exp matches libm over the float range", "[vec_math]") {
  CHECK(max_rel_error(cpu::vec::exp, ref_exp, -87.33f, 88.72f, 97) < 2e-7);
  // Results in the denormal range: within a couple of the smallest denormals.
  CHECK(max_rel_error(cpu::vec::exp, ref_exp, -104.0f, -87.33f, 97, 2.0 * kDenormMin) == 0);
  CHECK(cpu::vec::exp(0.0f) == 1.0f);
  CHECK(cpu::vec::exp(-kInf) == 0.0f);
  CHECK(cpu::vec::exp(-88.0f) > 0.0f);
  CHECK(cpu::vec::exp(-103.0f) > 0.0f);  // denormal, not flushed
  CHECK(cpu::vec::exp(-105.0f) == 0.0f);
  CHECK(cpu::vec::exp(88.72f) == Approx(std::exp(88.72f)).epsilon(2e-7));
  CHECK(cpu::vec::exp(88.8f) == kInf);
  CHECK(cpu::vec::exp(kInf) == kInf);
  CHECK(std::isnan(cpu::vec::exp(std::nanf(""))));
}

TEST_CASE("vec::tanh matches libm, saturates and keeps signs", "[vec_math]") {
  CHECK(max_rel_error(cpu::vec::tanh, ref_tanh, -kInf, kInf, 97) < 2e-7);
  for (float x : {10.0f, 1e4f, 1e30f, std::numeric_limits<float>::max(), kInf}) {
    CHECK(cpu::vec::tanh(x) == 1.0f);
    CHECK(cpu::vec::tanh(-x) == -1.0f);
  }
  CHECK(cpu::vec::tanh(kDenormMin) == kDenormMin);
  CHECK(std::signbit(cpu::vec::tanh(-0.0f)));
  CHECK(std::isnan(cpu::vec::tanh(std::nanf(""))));
}

TEST_CASE("vec::erf matches libm, saturates and keeps signs", "[vec_math]") {
  CHECK(max_rel_error(cpu::vec::erf, ref_erf, -kInf, kInf, 97) < 3e-7);
  for (float x : {4.0f, 6.0f, 1e30f, kInf}) {
    CHECK(cpu::vec::erf(x) == 1.0f);
    CHECK(cpu::vec::erf(-x) == -1.0f);
  }
  CHECK(std::signbit(cpu::vec::erf(-0.0f)));
  CHECK(std::isnan(cpu::vec::erf(std::nanf(""))));
  for (float x : {-30.0f, -4.5f, -1.0f, -0.3f, 0.0f, 0.7f, 2.0f, 9.0f}) {  // the Gaussian factor handed back
    float gauss = -1;
    CHECK(cpu::vec::erf_gauss(x, gauss) == cpu::vec::erf(x));
    CHECK(gauss == Approx(std::exp(-double(x) * x)).epsilon(1e-6).margin(1e-37));
  }
}

TEST_CASE("f32 softmax and log_softmax fast paths match f64", "[vec_math]") {
  for (int64_t cols : {1, 15, 16, 17, 300, 1000, 8193}) {
    INFO("cols " << cols);
    const Tensor x = mul(randn({37, cols}), 4.0);
    check_against_f64({x}, [](const std::vector<Tensor>& t) { return softmax(t[0], -1); });
    check_against_f64({x}, [](const std::vector<Tensor>& t) { return log_softmax(t[0], -1); });
    // Along dim 0: strided rows (inner > 1) take the general loop.
    check_against_f64({x}, [](const std::vector<Tensor>& t) { return softmax(t[0], 0); });
  }
  const Tensor long_row = randn({1, 1000003});
  check_against_f64({long_row}, [](const std::vector<Tensor>& t) { return softmax(t[0], -1); });
  check_against_f64({long_row}, [](const std::vector<Tensor>& t) { return log_softmax(t[0], -1); });
}

TEST_CASE("f32 layer_norm and rms_norm fast paths match f64", "[vec_math]") {
  for (int64_t cols : {1, 15, 17, 192, 1000}) {
    INFO("cols " << cols);
    const Tensor x = add(mul(randn({301, cols}), 3.0), 5.0);  // an offset mean
    const Tensor w = randn({cols}), b = randn({cols});
    check_against_f64({x, w}, [cols](const std::vector<Tensor>& t) { return rms_norm(t[0], {cols}, t[1]); }, 1e-5,
                      1e-6);
    // One column is degenerate for LayerNorm: x - mean = 0, and rstd =
    // 1 / sqrt(eps) ~ 316 amplifies f32 rounding in the (exactly 0) gradient.
    if (cols == 1) continue;
    check_against_f64({x, w, b}, [cols](const std::vector<Tensor>& t) { return layer_norm(t[0], {cols}, t[1], t[2]); },
                      1e-5, 1e-6);
    check_against_f64({x}, [cols](const std::vector<Tensor>& t) { return layer_norm(t[0], {cols}); }, 1e-5, 1e-6);
  }
  // A transposed input is made contiguous by the op before the kernel.
  const Tensor xt = randn({64, 33});
  check_against_f64({xt}, [](const std::vector<Tensor>& t) { return layer_norm(transpose(t[0], 0, 1), {64}); });
}

TEST_CASE("f32 gelu, tanh, sigmoid, silu and exp fast paths match f64", "[vec_math]") {
  using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
  const std::vector<Fn> fns = {
      [](const std::vector<Tensor>& t) { return gelu(t[0], GeluApprox::tanh); },
      [](const std::vector<Tensor>& t) { return gelu(t[0], GeluApprox::none); },
      [](const std::vector<Tensor>& t) { return tanh(t[0]); },
      [](const std::vector<Tensor>& t) { return sigmoid(t[0]); },
      [](const std::vector<Tensor>& t) { return silu(t[0]); },
      [](const std::vector<Tensor>& t) { return exp(t[0]); },
  };
  for (size_t k = 0; k < fns.size(); ++k) {
    INFO("function " << k);
    // 100003 is over the elementwise loops' parallel threshold (2^16) and
    // leaves a tail no vector width divides.
    for (int64_t n : {1, 15, 17, 100003}) {
      INFO("n " << n);
      check_against_f64({mul(randn({n}), 5.0)}, fns[k], 1e-5, 1e-6);
    }
    // A transposed view: strided runs.
    check_against_f64({randn({40, 70})}, [&](const std::vector<Tensor>& t) { return fns[k]({transpose(t[0], 0, 1)}); },
                      1e-5, 1e-6);
  }
}

TEST_CASE("f32 cross_entropy fast path matches f64", "[vec_math]") {
  for (int64_t classes : {1, 15, 17, 300, 1000}) {
    INFO("classes " << classes);
    const Tensor logits = mul(randn({53, classes}), 3.0);
    std::vector<int64_t> t = randint(0, classes, {53}).to_vector<int64_t>();
    t[3] = -100;  // ignored row
    const Tensor targets = from_vector<int64_t>(t, {53});
    for (double smoothing : {0.0, 0.1}) {
      CrossEntropyOptions o;
      o.label_smoothing = smoothing;
      check_against_f64({logits}, [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets, o); }, 1e-5,
                        1e-6);
      o.reduction = CrossEntropyOptions::Reduction::none;
      check_against_f64({logits}, [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets, o); }, 1e-5,
                        1e-6);
    }
  }
}

TEST_CASE("f32 AdamW matches f64 over a parallel split", "[vec_math]") {
  const int64_t n = 1000003;
  const Tensor init = randn({n});
  Tensor p32 = init.detach().requires_grad_(), p64 = init.to(DType::f64).detach().requires_grad_();
  auto make = [](const Tensor& p) {
    optim::ParamGroup g;
    g.params = {p};
    g.weight_decay = 0.1;
    return optim::AdamW({g}, optim::AdamWOptions{0.9, 0.95, 1e-8});
  };
  optim::AdamW a32 = make(p32), a64 = make(p64);
  for (int step = 0; step < 3; ++step) {
    const Tensor g = randn({n});
    p32.set_grad(g);
    p64.set_grad(g.to(DType::f64));
    a32.step(1e-3);
    a64.step(1e-3);
  }
  check_close(p32.detach(), p64.detach());
}
