// The softmax and cross-entropy kernels of cuda/softmax.cuh and
// cuda/cross_entropy.cuh on the SIMT emulator against the CPU backend's:
// row widths around each block size (32, 128, 256, 512 threads), the
// column kernels (inner > 1), log and plain, masked (-inf) and fully masked
// rows, ignored targets, label smoothing, i32 and i64 targets; the
// cross-entropy forward also as its kernel variant (src/kernels/variants.hpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "cross_entropy_args.hpp"
#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "softmax_args.hpp"

namespace {

using namespace loom;

void no_status(int, const char*) {}

void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = got.to(DType::f64).to_vector<double>(), w = want.to(DType::f64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) || std::isnan(g[i])) {
      CHECK(std::isnan(w[i]) == std::isnan(g[i]));
      continue;
    }
    worst = std::max(worst, std::abs(g[i] - w[i]) / (std::abs(w[i]) + 1.0));
  }
  CHECK(worst <= tol);
}

double tolerance(DType t) { return t == DType::f32 ? 2e-6 : 1e-13; }

}  // namespace

TEST_CASE("emulated softmax kernels match the CPU: rows, columns, log, masked rows", "[softmax]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(61);
  struct Case {
    int64_t outer, r, inner;
  };
  // f32 rows in whole quads up to 4096 are held in registers: a warp per row
  // (4, 200, 700, 1024: one, two, six, eight quads a lane), a block per row
  // (1028, 2100, 4096: four, eight, eight); the rest walk a block per row.
  const Case cases[] = {{5, 1, 1},    {3, 4, 1},    {4, 33, 1},   {3, 200, 1}, {3, 700, 1},
                        {2, 1024, 1}, {2, 1028, 1}, {2, 2100, 1}, {2, 4096, 1}, {1, 5000, 1},
                        {3, 7, 5},    {2, 40, 3}};
  for (DType t : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      for (bool log : {false, true}) {
        const Shape shape{c.outer, c.r, c.inner};
        const std::string name = std::string(log ? "log_softmax" : "softmax") + " [" + std::to_string(c.outer) +
                                 ", " + std::to_string(c.r) + ", " + std::to_string(c.inner) + "] " + dtype_name(t);
        Tensor x = mul(randn(shape, DType::f64, &gen), 3.0);
        if (c.r > 3) {  // a masked position, and (inner == 1) a fully masked first row
          NoGradGuard no_grad;
          x.narrow(1, 1, 1).fill_(-INFINITY);
          if (c.inner == 1) x.narrow(0, 0, 1).fill_(-INFINITY);
        }
        x = x.to(t);
        Tensor want = empty(shape, t), got = empty(shape, t);
        cpu.softmax(x, want, c.outer, c.r, c.inner, log);
        softmax_kernels::run_forward(x, got, c.outer, c.r, c.inner, log, {}, no_status);
        check_close(got, want, tolerance(t), name);

        Tensor g = randn(shape, DType::f64, &gen).to(t);
        Tensor want_dx = empty(shape, t), got_dx = empty(shape, t);
        cpu.softmax_backward(g, want, want_dx, c.outer, c.r, c.inner, log);
        softmax_kernels::run_backward(g, want, got_dx, c.outer, c.r, c.inner, log, {}, no_status);
        check_close(got_dx, want_dx, tolerance(t), name + " backward");
      }
    }
  }
}

TEST_CASE("emulated cross-entropy kernels match the CPU: smoothing, ignored rows, i32 and i64 targets",
          "[cross_entropy]") {
  // the forward as it is, and its kernel variant cross_entropy_pack_rescale
  const bool pack_rescale = GENERATE(false, true);
  INFO("pack_rescale " << pack_rescale);
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(62);
  for (DType t : {DType::f32, DType::f64}) {
    for (int64_t classes : {3, 40, 300, 2500}) {
      for (DType target_type : {DType::i64, DType::i32}) {
        for (double smoothing : {0.0, 0.1}) {
          const int64_t n = 6;
          kernels::CrossEntropyParams p;
          p.label_smoothing = smoothing;
          p.ignore_index = -100;
          const std::string name = "cross_entropy C=" + std::to_string(classes) + " " + dtype_name(t) + " targets " +
                                   dtype_name(target_type) + " smoothing " + std::to_string(smoothing);
          Tensor logits = mul(randn({n, classes}, DType::f64, &gen), 2.0).to(t);
          Tensor targets = randint(0, classes, {n}, DType::i64, &gen);
          {
            NoGradGuard no_grad;
            targets.narrow(0, 2, 1).fill_(-100);  // ignored
          }
          targets = targets.to(target_type);
          Tensor want = empty({n}, t), got = empty({n}, t), want_lse = empty({n}, t), got_lse = empty({n}, t);
          cpu.cross_entropy(logits, targets, want, want_lse, p);
          cross_entropy_kernels::run_forward(logits, targets, got, got_lse, p, {}, no_status, pack_rescale);
          check_close(got, want, tolerance(t), name);
          check_close(got_lse, want_lse, tolerance(t), name + " log-sum-exp");

          Tensor scale = rand({n}, DType::f64, &gen).to(t);
          Tensor want_g = empty({n, classes}, t), got_g = empty({n, classes}, t);
          cpu.cross_entropy_backward(logits, targets, want_lse, scale, want_g, p);
          cross_entropy_kernels::run_backward(logits, targets, got_lse, scale, got_g, p, {}, no_status);
          check_close(got_g, want_g, tolerance(t), name + " backward");
        }
      }
    }
  }
}

TEST_CASE("emulated cross-entropy with masked (-inf) logits, a row's maximum late, and a NaN logit",
          "[cross_entropy]") {
  // the forward as it is, and its kernel variant cross_entropy_pack_rescale
  const bool pack_rescale = GENERATE(false, true);
  INFO("pack_rescale " << pack_rescale);
  // The forward's one pass keeps a running maximum per thread: -inf logits
  // (first in a row too) add nothing, a maximum found late rescales the sum,
  // and a NaN logit gives a NaN loss, as on the CPU.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(64);
  const int64_t n = 4, classes = 700;
  kernels::CrossEntropyParams p;
  Tensor logits = randn({n, classes}, DType::f32, &gen);
  {
    NoGradGuard no_grad;
    logits.narrow(0, 0, 1).narrow(1, 0, 300).fill_(-INFINITY);  // row 0 starts masked
    logits.narrow(0, 1, 1).narrow(1, 0, 600).mul_(0.01);        // row 1: its large values come last
    logits.narrow(0, 1, 1).narrow(1, 650, 50).add_(full({1, 50}, 20.0));
    logits.narrow(0, 3, 1).narrow(1, 123, 1).fill_(NAN);  // row 3: a NaN
  }
  Tensor targets = from_vector(std::vector<int64_t>{400, 5, 17, 9}, {n});
  Tensor want = empty({n}), got = empty({n}), want_lse = empty({n}), got_lse = empty({n});
  cpu.cross_entropy(logits, targets, want, want_lse, p);
  cross_entropy_kernels::run_forward(logits, targets, got, got_lse, p, {}, no_status, pack_rescale);
  check_close(got.narrow(0, 0, 3), want.narrow(0, 0, 3), 1e-5, "losses of the finite rows");
  check_close(got_lse.narrow(0, 0, 3), want_lse.narrow(0, 0, 3), 1e-5, "their log-sum-exps");
  for (int64_t i = 0; i < 3; ++i) CHECK(std::isfinite(want.to_vector<float>()[i]));  // masked logits: still finite
  CHECK(std::isnan(want.to_vector<float>()[3]));
  CHECK(std::isnan(got.to_vector<float>()[3]));

  // A NaN a thread sees with nothing but -inf (a NaN inside a masked stretch;
  // short unaligned rows, one logit a thread) still makes the loss NaN.
  Tensor few = randn({3, 10}, DType::f32, &gen);
  {
    NoGradGuard no_grad;
    few.narrow(0, 0, 1).narrow(1, 0, 8).fill_(-INFINITY);
    few.narrow(0, 0, 1).narrow(1, 5, 1).fill_(NAN);  // row 0: a NaN among -inf
    few.narrow(0, 1, 1).narrow(1, 7, 1).fill_(NAN);  // row 1 starts 40 bytes in: not on a 16-byte boundary
  }
  Tensor few_targets = from_vector(std::vector<int64_t>{9, 2, 3}, {3});
  Tensor few_got = empty({3}), few_lse = empty({3}), few_want = empty({3}), few_want_lse = empty({3});
  cpu.cross_entropy(few, few_targets, few_want, few_want_lse, p);
  cross_entropy_kernels::run_forward(few, few_targets, few_got, few_lse, p, {}, no_status, pack_rescale);
  const std::vector<float> fw = few_want.to_vector<float>(), fg = few_got.to_vector<float>();
  CHECK(std::isnan(fw[0]));
  CHECK(std::isnan(fg[0]));
  CHECK(std::isnan(fw[1]));
  CHECK(std::isnan(fg[1]));
  CHECK(fg[2] == Approx(fw[2]).epsilon(1e-5));
}

TEST_CASE("emulated cross-entropy on bf16 logits equals the f32 kernels on their values, gradients rounded once",
          "[cross_entropy]") {
  // the forward as it is, and its kernel variant cross_entropy_pack_rescale
  const bool pack_rescale = GENERATE(false, true);
  INFO("pack_rescale " << pack_rescale);
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(63);
  for (int64_t classes : {40, 2500}) {
    const int64_t n = 5;
    kernels::CrossEntropyParams p;
    p.label_smoothing = 0.1;
    p.ignore_index = -100;
    const Tensor logits = mul(randn({n, classes}, DType::f32, &gen), 3.0).to(DType::bf16);
    Tensor targets = randint(0, classes, {n}, DType::i64, &gen);
    {
      NoGradGuard no_grad;
      targets.narrow(0, 1, 1).fill_(-100);
    }
    const Tensor widened = logits.to(DType::f32);
    Tensor want = empty({n}), want_lse = empty({n}), got = empty({n}), got_lse = empty({n});
    cross_entropy_kernels::run_forward(widened, targets, want, want_lse, p, {}, no_status, pack_rescale);
    cross_entropy_kernels::run_forward(logits, targets, got, got_lse, p, {}, no_status, pack_rescale);
    CHECK(got.to_vector<float>() == want.to_vector<float>());
    CHECK(got_lse.to_vector<float>() == want_lse.to_vector<float>());

    const Tensor scale = rand({n}, DType::f32, &gen);
    Tensor want_g = empty({n, classes}), got_g = empty({n, classes}, DType::bf16);
    cross_entropy_kernels::run_backward(widened, targets, want_lse, scale, want_g, p, {}, no_status);
    cross_entropy_kernels::run_backward(logits, targets, got_lse, scale, got_g, p, {}, no_status);
    CHECK(got_g.to(DType::f32).to_vector<float>() == want_g.to(DType::bf16).to(DType::f32).to_vector<float>());

    // The CPU's entries take bf16 logits the same way.
    Tensor cpu_losses = empty({n}), cpu_lse = empty({n}), cpu_g = empty({n, classes}, DType::bf16);
    cpu.cross_entropy(logits, targets, cpu_losses, cpu_lse, p);
    cpu.cross_entropy_backward(logits, targets, cpu_lse, scale, cpu_g, p);
    check_close(cpu_losses, got, 2e-6, "CPU bf16 losses");
    check_close(cpu_g.to(DType::f32), got_g.to(DType::f32), 1e-2, "CPU bf16 gradients");
  }
  Tensor wrong_rows = empty({2}, DType::bf16), lse = empty({2});
  CHECK_THROWS_WITH(cross_entropy_kernels::run_forward(randn({2, 4}).to(DType::bf16), zeros({2}, DType::i64),
                                                       wrong_rows, lse, {}, {}, no_status),
                    Catch::Contains("losses must be a contiguous [N] of f32"));
}

TEST_CASE("an emulated cross-entropy target outside the classes gives NaN, as on a GPU", "[cross_entropy]") {
  Tensor logits = randn({2, 4});
  Tensor targets = from_vector<int64_t>({1, 9}, {2});
  Tensor losses = empty({2}), lse = empty({2});
  cross_entropy_kernels::run_forward(logits, targets, losses, lse, {}, {}, no_status);
  const std::vector<float> l = losses.to_vector<float>();
  CHECK(std::isfinite(l[0]));
  CHECK(std::isnan(l[1]));
  Tensor grad = empty({2, 4});
  cross_entropy_kernels::run_backward(logits, targets, lse, ones({2}), grad, {}, {}, no_status);
  for (float g : grad.narrow(0, 0, 1).to_vector<float>()) CHECK(std::isfinite(g));
  for (float g : grad.narrow(0, 1, 1).to_vector<float>()) CHECK(std::isnan(g));
}
