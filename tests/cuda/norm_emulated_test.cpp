// The norm kernels of cuda/norm.cuh (plain and fused with the residual add)
// on the SIMT emulator against the CPU backend's kernels, at row widths
// around every block size the launch picks (32, 128, 256, 512 threads):
// fewer columns than threads, a partial last stride, several strides (4500
// columns: more than four per thread of 512).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "norm_args.hpp"

namespace {

using namespace loom;

void no_status(int, const char*) {}

void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined() == want.defined());
  if (!got.defined()) return;
  const double err = amax(abs(sub(got, want))).item<double>();
  const double scale = std::max(1.0, amax(abs(want)).item<double>());
  CHECK(err <= tol * scale);
}

}  // namespace

TEST_CASE("emulated norm kernels match the CPU: layer and RMS, affine or not, plain or fused", "[norm]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(41);
  for (DType t : {DType::f32, DType::f64}) {
    const double tol = t == DType::f32 ? 2e-5 : 1e-12;
    for (int64_t cols : {1, 5, 33, 127, 300, 513, 2100, 4500}) {
      if (cols > 1000 && t == DType::f64) continue;  // the 512-thread blocks, once (each thread is an OS thread)
      for (bool rms : {false, true}) {
        for (bool fused : {false, true}) {
          const bool affine = (cols + (rms ? 1 : 0)) % 2 == 1;  // both ways across the widths
          kernels::NormShape s;
          s.rows = cols > 1000 ? 3 : 6;
          s.cols = cols;
          s.eps = 1e-5;
          s.rms = rms;
          const Shape rc{s.rows, cols};
          const TensorOptions o(t);
          auto maybe = [&](bool want, const Shape& shape) { return want ? randn(shape, o, &gen) : Tensor(); };
          auto out_if = [&](bool want, const Shape& shape) { return want ? empty(shape, o) : Tensor(); };
          Tensor x = add(mul(randn(rc, o, &gen), 3.0), 1.5);
          Tensor r = maybe(fused, rc), w = maybe(affine, {cols}), b = maybe(affine && !rms, {cols});
          const std::string name = std::string(rms ? "rms" : "layer") + " cols=" + std::to_string(cols) +
                                   (fused ? " fused" : "") + (affine ? " affine " : " ") + dtype_name(t);

          Tensor out = empty(rc, o), sum = out_if(fused, rc), mean = empty({s.rows}, o), rstd = empty({s.rows}, o);
          Tensor e_out = empty(rc, o), e_sum = out_if(fused, rc), e_mean = empty({s.rows}, o),
                 e_rstd = empty({s.rows}, o);
          cpu.norm(x, r, w, b, out, sum, mean, rstd, s);
          norm_kernels::run_forward(x, r, w, b, e_out, e_sum, e_mean, e_rstd, s, {}, no_status);
          check_close(e_out, out, tol, name + " out");
          check_close(e_sum, sum, tol, name + " sum");
          check_close(e_mean, mean, tol, name + " mean");
          check_close(e_rstd, rstd, tol, name + " rstd");

          const Tensor& normalised = fused ? sum : x;
          Tensor g = randn(rc, o, &gen), gs = maybe(fused, rc);
          Tensor gx = empty(rc, o), gw = out_if(affine, {cols}), gb = out_if(affine && !rms, {cols});
          Tensor e_gx = empty(rc, o), e_gw = out_if(affine, {cols}), e_gb = out_if(affine && !rms, {cols});
          cpu.norm_backward(g, gs, normalised, w, mean, rstd, gx, gw, gb, s);
          norm_kernels::run_backward(g, gs, normalised, w, mean, rstd, e_gx, e_gw, e_gb, s, {}, no_status);
          check_close(e_gx, gx, tol, name + " grad_x");
          check_close(e_gw, gw, tol, name + " grad_w");
          check_close(e_gb, gb, tol, name + " grad_b");
        }
      }
    }
  }
}

TEST_CASE("emulated norm weight gradients over no rows are zero", "[norm]") {
  kernels::NormShape s;
  s.rows = 0;
  s.cols = 40;
  Tensor none = empty({0, 40}), stats = empty({0});
  Tensor gw = full({40}, 7.0), gb = full({40}, 7.0);
  norm_kernels::run_backward(none, Tensor(), none, Tensor(), stats, stats, Tensor(), gw, gb, s, {}, no_status);
  CHECK(amax(abs(gw)).item<double>() == 0.0);
  CHECK(amax(abs(gb)).item<double>() == 0.0);
}

TEST_CASE("emulated norm weight gradients summed over several row chunks", "[norm]") {
  // Rows past one chunk (a partial last chunk too): each chunk's partial sums
  // and their fixed-order total must equal the CPU's sums over all rows.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(43);
  kernels::NormShape s;
  s.cols = 45;
  s.rows = 2 * norm_kernels::weight_grad_chunk_rows(1, s.cols) + 37;
  s.eps = 1e-5;
  REQUIRE(norm_kernels::weight_grad_chunk_rows(s.rows, s.cols) < s.rows);
  const Shape rc{s.rows, s.cols};
  Tensor x = randn(rc, DType::f64, &gen), w = randn({s.cols}, DType::f64, &gen), b = randn({s.cols}, DType::f64, &gen);
  Tensor out = empty(rc, DType::f64), mean = empty({s.rows}, DType::f64), rstd = empty({s.rows}, DType::f64);
  cpu.norm(x, Tensor(), w, b, out, Tensor(), mean, rstd, s);
  Tensor g = randn(rc, DType::f64, &gen);
  Tensor gw = empty({s.cols}, DType::f64), gb = empty({s.cols}, DType::f64);
  Tensor e_gw = full({s.cols}, NAN, DType::f64), e_gb = full({s.cols}, NAN, DType::f64);
  cpu.norm_backward(g, Tensor(), x, w, mean, rstd, Tensor(), gw, gb, s);
  norm_kernels::run_backward(g, Tensor(), x, w, mean, rstd, Tensor(), e_gw, e_gb, s, {}, no_status);
  check_close(e_gw, gw, 1e-12, "grad_w over " + std::to_string(s.rows) + " rows");
  check_close(e_gb, gb, 1e-12, "grad_b over " + std::to_string(s.rows) + " rows");
}
