// The 16-byte packed pointwise kernels of cuda/pointwise_packed.cuh on the
// SIMT emulator against the CPU backend: every unary op (and its derivative)
// and every binary op, f32 and bf16, lengths that fill whole packs or leave a
// tail, a broadcast value on either side of a binary op; and the calls the
// packed path must decline (misaligned, strided, f64), which the strided
// kernels then take.
#include <catch2/catch.hpp>

#include <string>

#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "pointwise_packed_args.hpp"

namespace {

using namespace loom;
using kernels::Binary;
using kernels::Unary;

void no_status(int, const char*) {}

// Relative, with an absolute floor near zero: the CPU evaluates some ops by
// other (equally accurate) formulas, e.g. gelu through a sigmoid.
double tolerance(DType t) { return t == DType::f32 ? 1e-5 : 8e-3; }

void check_close(const Tensor& got, const Tensor& want, DType t, const std::string& what) {
  INFO(what);
  Tensor g = got.to(DType::f64), w = want.to(DType::f64);
  const double err = amax(div(abs(sub(g, w)), add(abs(w), 1.0))).item<double>();
  CHECK(err <= tolerance(t));
}

// Inputs inside each op's domain.
Tensor input_for(Unary op, int64_t n, DType t, Generator& gen) {
  const bool positive = op == Unary::log || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::pow_scalar;
  Tensor x = positive ? add(rand({n}, DType::f64, &gen), 0.5) : mul(randn({n}, DType::f64, &gen), 2.0);
  return x.to(t);
}

const Unary kUnary[] = {Unary::neg,  Unary::exp,     Unary::log,  Unary::sqrt,     Unary::rsqrt,
                        Unary::abs,  Unary::tanh,    Unary::sigmoid, Unary::relu,  Unary::gelu_erf,
                        Unary::gelu_tanh, Unary::silu, Unary::clamp, Unary::pow_scalar};
const Binary kBinary[] = {Binary::add, Binary::sub, Binary::mul, Binary::div, Binary::pow, Binary::maximum,
                          Binary::minimum};

kernels::UnaryParams params_for(Unary op) {
  kernels::UnaryParams p;
  if (op == Unary::clamp) p.lo = -0.5, p.hi = 0.7, p.has_lo = p.has_hi = true;
  if (op == Unary::pow_scalar) p.exponent = 2.5;
  return p;
}

}  // namespace

TEST_CASE("packed unary kernels and derivatives match the CPU, f32 and bf16, whole packs and tails", "[pointwise]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(51);
  for (DType t : {DType::f32, DType::bf16}) {
    for (int64_t n : {int64_t{3}, int64_t{16}, int64_t{2053}}) {
      for (Unary op : kUnary) {
        const std::string name = "unary op " + std::to_string(static_cast<int>(op)) + " n=" + std::to_string(n) + " " +
                                 dtype_name(t);
        const kernels::UnaryParams p = params_for(op);
        Tensor x = input_for(op, n, t, gen);
        Tensor want = empty({n}, t), got = empty({n}, t);
        cpu.unary(op, x, want, p);
        REQUIRE(pointwise::try_unary_packed(op, x, got, p, {}, no_status));
        check_close(got, want, t, name);

        Tensor g = randn({n}, DType::f64, &gen).to(t);
        Tensor want_dx = empty({n}, t), got_dx = empty({n}, t);
        cpu.unary_backward(op, g, x, want, want_dx, p);
        REQUIRE(pointwise::try_unary_backward_packed(op, g, x, want, got_dx, p, {}, no_status));
        check_close(got_dx, want_dx, t, name + " backward");
      }
    }
  }
}

TEST_CASE("packed binary kernels match the CPU, with a broadcast value on either side", "[pointwise]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(52);
  for (DType t : {DType::f32, DType::bf16}) {
    for (int64_t n : {int64_t{5}, int64_t{2053}}) {
      for (Binary op : kBinary) {
        for (int value_side = 0; value_side < 3; ++value_side) {  // 0: none, 1: a, 2: b
          const bool positive_a = op == Binary::pow;
          Tensor a = (positive_a ? add(rand({value_side == 1 ? 1 : n}, DType::f64, &gen), 0.5)
                                 : randn({value_side == 1 ? 1 : n}, DType::f64, &gen))
                         .to(t);
          Tensor b = add(rand({value_side == 2 ? 1 : n}, DType::f64, &gen), 0.5).to(t);  // away from 0 for div
          if (value_side == 1) a = a.expand({n});
          if (value_side == 2) b = b.expand({n});
          const std::string name = "binary op " + std::to_string(static_cast<int>(op)) + " n=" + std::to_string(n) +
                                   " value side " + std::to_string(value_side) + " " + dtype_name(t);
          Tensor want = empty({n}, t), got = empty({n}, t);
          cpu.binary(op, a, b, want);
          REQUIRE(pointwise::try_binary_packed(op, a, b, got, {}, no_status));
          if (op == Binary::div || op == Binary::pow) {
            check_close(got, want, t, name);
          } else {
            // Exact in float (bf16 operands), then one rounding: bit for bit,
            // which also pins the rounding to nearest-even.
            INFO(name);
            CHECK(got.to(DType::f64).to_vector<double>() == want.to(DType::f64).to_vector<double>());
          }
        }
      }
    }
  }
}

TEST_CASE("the packed path declines what it cannot take", "[pointwise]") {
  Tensor x = randn({65});
  Tensor out = empty({64});
  const kernels::UnaryParams p;
  CHECK_FALSE(pointwise::try_unary_packed(Unary::exp, x.narrow(0, 1, 64), out, p, {}, no_status));  // 4 bytes off
  Tensor m = randn({8, 8});
  CHECK_FALSE(pointwise::try_unary_packed(Unary::exp, m.t(), empty({8, 8}), p, {}, no_status));  // strided
  Tensor d = randn({64}, DType::f64);
  CHECK_FALSE(pointwise::try_unary_packed(Unary::exp, d, empty({64}, DType::f64), p, {}, no_status));  // f64
  Tensor row = randn({8});
  CHECK_FALSE(pointwise::try_binary_packed(Binary::add, m, row.expand({8, 8}), empty({8, 8}), {}, no_status));  // row broadcast
  CHECK_FALSE(pointwise::try_binary_packed(Binary::add, randn({64}), randn({64}), empty({65}).narrow(0, 1, 64), {},
                                    no_status));  // misaligned output
}
