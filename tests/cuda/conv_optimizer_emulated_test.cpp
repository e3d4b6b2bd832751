// The im2col kernels of cuda/conv_kernels.cuh and the one-tensor AdamW of
// cuda/adamw.cuh on the SIMT emulator against the CPU backend's: unfold and
// fold with stride, padding and windows that overlap (fold sums every
// window an input falls in), f32 and f64; AdamW over a few steps.
#include <catch2/catch.hpp>

#include <string>

#include "adamw.cuh"
#include "conv_kernels.cuh"
#include "kernels/backend.hpp"
#include "loom/loom.hpp"

namespace {

using namespace loom;

void no_status(int, const char*) {}

double tolerance(DType t) { return t == DType::f32 ? 1e-6 : 1e-14; }

void check_close(const Tensor& got, const Tensor& want, DType t, const std::string& what) {
  INFO(what);
  CHECK(amax(div(abs(sub(got, want)), add(abs(want), 1.0))).item<double>() <= tolerance(t));
}

}  // namespace

TEST_CASE("emulated unfold2d and fold2d match the CPU: strides, padding, overlapping windows", "[conv]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(101);
  const kernels::Window2d windows[] = {{3, 3, 1, 1, 1, 1}, {4, 4, 4, 4, 0, 0}, {3, 2, 2, 1, 1, 0}};
  for (DType t : {DType::f32, DType::f64}) {
    for (const kernels::Window2d& w : windows) {
      const int64_t n = 2, c = 3, h = 8, wd = 7;
      const int64_t oh = (h + 2 * w.ph - w.kh) / w.sh + 1, ow = (wd + 2 * w.pw - w.kw) / w.sw + 1;
      const std::string name = "window " + std::to_string(w.kh) + "x" + std::to_string(w.kw) + " stride " +
                               std::to_string(w.sh) + " " + dtype_name(t);
      Tensor x = randn({n, c, h, wd}, t, &gen);
      const Shape cols_shape{n, c * w.kh * w.kw, oh * ow};
      Tensor want = empty(cols_shape, t), got = empty(cols_shape, t);
      cpu.unfold2d(x, want, w);
      conv_kernels::run_unfold(x, got, w, {}, no_status);
      check_close(got, want, t, name + " unfold");

      Tensor cols = randn(cols_shape, t, &gen);
      Tensor want_x = full({n, c, h, wd}, 0.5, t), got_x = full({n, c, h, wd}, 0.5, t);  // fold adds into x
      cpu.fold2d(cols, want_x, w);
      conv_kernels::run_fold(cols, got_x, w, {}, no_status);
      check_close(got_x, want_x, t, name + " fold");
    }
  }
}

TEST_CASE("emulated one-tensor AdamW matches the CPU's update over several steps", "[adamw]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(102);
  for (DType t : {DType::f32, DType::f64}) {
    const int64_t n = 1000;
    Tensor p_cpu = randn({n}, t, &gen), p_emu = p_cpu.clone();
    Tensor m_cpu = zeros({n}, t), v_cpu = zeros({n}, t), m_emu = zeros({n}, t), v_emu = zeros({n}, t);
    // f32 parameters also write their bf16 copy (poisoned first).
    Tensor half = t == DType::f32 ? full({n}, 7.0, DType::bf16) : Tensor();
    for (int step = 1; step <= 3; ++step) {
      Tensor g = randn({n}, t, &gen);
      kernels::AdamWStep s{1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0 - std::pow(0.9, step), 1.0 - std::pow(0.95, step)};
      cpu.adamw(p_cpu, g, m_cpu, v_cpu, Tensor(), s);
      adamw_kernels::run(p_emu, g, m_emu, v_emu, half, s, {}, no_status);
    }
    check_close(p_emu, p_cpu, t, std::string("param ") + dtype_name(t));
    check_close(m_emu, m_cpu, t, std::string("exp_avg ") + dtype_name(t));
    check_close(v_emu, v_cpu, t, std::string("exp_avg_sq ") + dtype_name(t));
    if (half.defined()) CHECK(half.to_vector<float>() == p_emu.to(DType::bf16).to_vector<float>());
  }
  Tensor p = zeros({8}), wrong = zeros({8}, DType::f16);
  kernels::AdamWStep s{1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05};
  CHECK_THROWS_WITH(adamw_kernels::run(p, p, p, p, wrong, s, {}, no_status),
                    Catch::Contains("half copy") && Catch::Contains("f16"));
}
