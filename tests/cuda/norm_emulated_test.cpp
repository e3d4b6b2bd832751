// The norm kernels of cuda/norm.cuh (plain and fused with the residual add)
// on the SIMT emulator against the CPU backend's kernels. f32 rows in whole
// quads (4 values) up to 1024 columns take the warp-per-row kernels, at
// every quads-per-lane they are built for (4 and 128 columns one quad a lane,
// 132 two, 300 four, 768 six, 1024 eight), up to 4096 the same spread over a
// block (1028: four quads a lane, 2100: eight), with f32 or bf16 x, output
// and output gradient. Ragged or wider rows, and f64, take the block-per-row
// kernels (halves widened around them), at widths around every block size
// the launch picks (32, 128, 256, 512 threads): fewer columns than threads,
// a partial last stride, several strides (4500 columns: more than four per
// thread of 512).
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

// The kernel variant norm_backward_shared_sums (warp-wide rows keep their
// column sums in shared memory) against the kernel's own results: the same
// additions in the same order, but the compiler may contract a different
// set of them into fused multiply-adds, so the last bits may differ.
void expect_shared_sums_match(const Tensor& g, const Tensor& gs, const Tensor& x, const Tensor& w,
                                  const Tensor& mean, const Tensor& rstd, const Tensor& want_gx,
                                  const Tensor& want_gxh, const Tensor& want_gw, const Tensor& want_gb,
                                  const kernels::NormShape& s) {
  const auto like = [](const Tensor& t) {
    return t.defined() ? full(t.shape(), NAN, TensorOptions(t.dtype())) : Tensor();
  };
  Tensor gx = like(want_gx), gxh = like(want_gxh), gw = like(want_gw), gb = like(want_gb);
  norm_kernels::run_backward(g, gs, x, w, mean, rstd, gx, gxh, gw, gb, s, {}, no_status, true);
  for (const auto& [got, want] : {std::pair{gx, want_gx}, {gxh, want_gxh}, {gw, want_gw}, {gb, want_gb}}) {
    if (!want.defined()) continue;
    const double tol = want.dtype() == DType::bf16 ? 1e-2 : 1e-6;
    check_close(got.to(DType::f32), want.to(DType::f32), tol,
                "norm_backward_shared_sums, " + shape_str(want.shape()) + " " + dtype_name(want.dtype()));
  }
}

}  // namespace

TEST_CASE("emulated norm kernels match the CPU: layer and RMS, affine or not, plain or fused", "[norm]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(41);
  for (DType t : {DType::f32, DType::f64}) {
    const double tol = t == DType::f32 ? 2e-5 : 1e-12;
    for (int64_t cols : {1, 4, 5, 33, 127, 128, 132, 300, 513, 768, 1024, 1028, 2100, 4500}) {
      if (cols > 1000 && t == DType::f64) continue;  // the 512-thread blocks, once (each thread is an OS thread)
      for (bool rms : {false, true}) {
        for (bool fused : {false, true}) {
          const bool affine = (cols + (rms ? 1 : 0) + (fused ? 1 : 0)) % 2 == 1;  // both ways at every width
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
          cpu.norm_backward(g, gs, normalised, w, mean, rstd, gx, Tensor(), gw, gb, s);
          norm_kernels::run_backward(g, gs, normalised, w, mean, rstd, e_gx, Tensor(), e_gw, e_gb, s, {}, no_status);
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
  norm_kernels::run_backward(none, Tensor(), none, Tensor(), stats, stats, Tensor(), Tensor(), gw, gb, s, {}, no_status);
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
  cpu.norm_backward(g, Tensor(), x, w, mean, rstd, Tensor(), Tensor(), gw, gb, s);
  norm_kernels::run_backward(g, Tensor(), x, w, mean, rstd, Tensor(), Tensor(), e_gw, e_gb, s, {}, no_status);
  check_close(e_gw, gw, 1e-12, "grad_w over " + std::to_string(s.rows) + " rows");
  check_close(e_gb, gb, 1e-12, "grad_b over " + std::to_string(s.rows) + " rows");
}

TEST_CASE("emulated register-resident norms over many blocks: several rows a warp, a block, and in the forward",
          "[norm]") {
  // Enough rows that each block of the backward takes more rows than it has
  // row groups, so a lane sums several rows before the block's warps and
  // then the blocks' partial sums are added; and (warp-wide rows, more than
  // kWarpRowBlocks blocks' worth) a forward warp that loops over rows with
  // its weight and bias loaded once. 8 columns: a warp per row; 1028: the
  // four warps of a block per row.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(47);
  // the forward as it is, and its kernel variant norm_forward_prefetch (a
  // warp's next row asked for first; the emulator's prefetch reads the byte
  // it asks for, so under AddressSanitizer one past the last row of x or the
  // residual is an out-of-bounds read: 2102 rows of 8 f32 fill their 64-byte
  // rounded storage to the end)
  const bool prefetch_next = GENERATE(false, true);
  INFO("prefetch_next " << prefetch_next);
  struct Case {
    int64_t rows, cols;
    int warps;
  };
  for (const Case c : {Case{4 * norm_kernels::kWarpRowBlocks + 54, 8, 1}, Case{norm_kernels::kWarpRowBlocks + 8, 1028, 4}}) {
    kernels::NormShape s;
    s.cols = c.cols;
    s.rows = c.rows;
    s.eps = 1e-5;
    const std::string name = std::to_string(s.rows) + " x " + std::to_string(s.cols);
    INFO(name);
    REQUIRE(norm_kernels::row_quads_fit(DType::f32, s.cols, {}).warps == c.warps);
    REQUIRE(norm_kernels::warp_rows_backward_chunk(s.rows, c.warps) > 4 / c.warps);
    const Shape rc{s.rows, s.cols};
    Tensor x = randn(rc, DType::f32, &gen), w = randn({s.cols}, DType::f32, &gen);
    Tensor b = randn({s.cols}, DType::f32, &gen);
    Tensor out = empty(rc), mean = empty({s.rows}), rstd = empty({s.rows});
    Tensor e_out = full(rc, NAN), e_mean = full({s.rows}, NAN), e_rstd = full({s.rows}, NAN);
    cpu.norm(x, Tensor(), w, b, out, Tensor(), mean, rstd, s);
    norm_kernels::run_forward(x, Tensor(), w, b, e_out, Tensor(), e_mean, e_rstd, s, {}, no_status, prefetch_next);
    check_close(e_out, out, 2e-5, "out");
    check_close(e_mean, mean, 2e-5, "mean");
    check_close(e_rstd, rstd, 2e-5, "rstd");
    // fused with the residual add: the residual is read (and prefetched) too
    Tensor r = randn(rc, DType::f32, &gen), sum = empty(rc), e_sum = full(rc, NAN);
    cpu.norm(x, r, w, b, out, sum, mean, rstd, s);
    norm_kernels::run_forward(x, r, w, b, e_out, e_sum, e_mean, e_rstd, s, {}, no_status, prefetch_next);
    check_close(e_out, out, 2e-5, "fused out");
    check_close(e_sum, sum, 0, "fused sum");
    cpu.norm(x, Tensor(), w, b, out, Tensor(), mean, rstd, s);  // the statistics the backward below takes
    Tensor g = randn(rc, DType::f32, &gen);
    Tensor gx = empty(rc), gw = empty({s.cols}), gb = empty({s.cols});
    Tensor e_gx = full(rc, NAN), e_gw = full({s.cols}, NAN), e_gb = full({s.cols}, NAN);
    cpu.norm_backward(g, Tensor(), x, w, mean, rstd, gx, Tensor(), gw, gb, s);
    norm_kernels::run_backward(g, Tensor(), x, w, mean, rstd, e_gx, Tensor(), e_gw, e_gb, s, {}, no_status);
    check_close(e_gx, gx, 2e-5, "grad_x");
    check_close(e_gw, gw, 2e-5, "grad_w");
    check_close(e_gb, gb, 2e-5, "grad_b");
    expect_shared_sums_match(g, Tensor(), x, w, mean, rstd, e_gx, Tensor(), e_gw, e_gb, s);
  }
}

TEST_CASE("emulated norm kernels: an operand off 16-byte alignment takes the block-per-row kernels", "[norm]") {
  // Rows of whole packs, but x starts one element into its storage: the warp
  // kernels' 16-byte loads would be misaligned there.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(53);
  kernels::NormShape s;
  s.rows = 5;
  s.cols = 64;
  s.eps = 1e-5;
  REQUIRE(norm_kernels::row_quads_fit(DType::f32, s.cols, {}).warps > 0);
  Tensor storage = randn({s.rows * s.cols + 1}, DType::f32, &gen);
  Tensor x = storage.narrow(0, 1, s.rows * s.cols).reshape({s.rows, s.cols});
  REQUIRE(x.is_contiguous());
  REQUIRE(norm_kernels::row_quads_fit(DType::f32, s.cols, {&x}).warps == 0);
  Tensor w = randn({s.cols}, DType::f32, &gen);
  Tensor out = empty({s.rows, s.cols}), mean = empty({s.rows}), rstd = empty({s.rows});
  Tensor e_out = empty({s.rows, s.cols}), e_mean = empty({s.rows}), e_rstd = empty({s.rows});
  cpu.norm(x, Tensor(), w, Tensor(), out, Tensor(), mean, rstd, s);
  norm_kernels::run_forward(x, Tensor(), w, Tensor(), e_out, Tensor(), e_mean, e_rstd, s, {}, no_status);
  check_close(e_out, out, 2e-5, "out");
  check_close(e_rstd, rstd, 2e-5, "rstd");
}

TEST_CASE("emulated fused norm with a bf16 branch, bf16 output and bf16 gradients matches the CPU", "[norm]") {
  // Autocast's residual norm: x (the branch) and out in bf16, the residual,
  // sum and statistics in f32; backward reads a bf16 output gradient and
  // writes grad_x in f32 and rounded to bf16. 768, 300 and 2048 columns: the
  // warp (and block-wide) kernels read and write the halves; 30: the block
  // kernels, widened around.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(59);
  for (int64_t cols : {768, 300, 2048, 30}) {
    for (bool rms : {false, true}) {
      kernels::NormShape s;
      s.rows = 5;
      s.cols = cols;
      s.eps = 1e-5;
      s.rms = rms;
      const Shape rc{s.rows, cols};
      const std::string name = std::string(rms ? "rms" : "layer") + " cols=" + std::to_string(cols);
      Tensor x = add(mul(randn(rc, DType::f32, &gen), 3.0), 1.5).to(DType::bf16), r = randn(rc, DType::f32, &gen);
      Tensor w = randn({cols}, DType::f32, &gen), b = rms ? Tensor() : randn({cols}, DType::f32, &gen);
      Tensor out = empty(rc, DType::bf16), sum = empty(rc), mean = empty({s.rows}), rstd = empty({s.rows});
      Tensor e_out = empty(rc, DType::bf16), e_sum = empty(rc), e_mean = empty({s.rows}), e_rstd = empty({s.rows});
      cpu.norm(x, r, w, b, out, sum, mean, rstd, s);
      norm_kernels::run_forward(x, r, w, b, e_out, e_sum, e_mean, e_rstd, s, {}, no_status);
      check_close(e_out.to(DType::f32), out.to(DType::f32), 1e-2, name + " bf16 out");
      check_close(e_sum, sum, 0, name + " sum");  // one f32 add either way
      check_close(e_rstd, rstd, 2e-5, name + " rstd");

      Tensor g = randn(rc, DType::f32, &gen).to(DType::bf16), gs = randn(rc, DType::f32, &gen);
      Tensor gx = empty(rc), gxh = empty(rc, DType::bf16), gw = empty({cols}), gb = rms ? Tensor() : empty({cols});
      Tensor e_gx = empty(rc), e_gxh = empty(rc, DType::bf16), e_gw = empty({cols}),
             e_gb = rms ? Tensor() : empty({cols});
      cpu.norm_backward(g, gs, sum, w, mean, rstd, gx, gxh, gw, gb, s);
      norm_kernels::run_backward(g, gs, sum, w, mean, rstd, e_gx, e_gxh, e_gw, e_gb, s, {}, no_status);
      check_close(e_gx, gx, 2e-5, name + " grad_x");
      check_close(e_gxh.to(DType::f32), gx, 1e-2, name + " grad_x bf16");
      check_close(e_gw, gw, 2e-5, name + " grad_w");
      check_close(e_gb, gb, 2e-5, name + " grad_b");
      expect_shared_sums_match(g, gs, sum, w, mean, rstd, e_gx, e_gxh, e_gw, e_gb, s);
      // The half copy alone (the stream's addend needs no gradient).
      Tensor only_half = empty(rc, DType::bf16);
      norm_kernels::run_backward(g, gs, sum, w, mean, rstd, Tensor(), only_half, Tensor(), Tensor(), s, {}, no_status);
      check_close(only_half.to(DType::f32), e_gxh.to(DType::f32), 0, name + " grad_x bf16 alone");
    }
  }
}
