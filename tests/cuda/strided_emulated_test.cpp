// The strided kernels of cuda/pointwise_strided.cuh and cuda/copy_kernels.cuh
// on the SIMT emulator against the CPU backend: pointwise ops on transposed
// and broadcast operands in every dtype the CPU defines them for (the packed
// path never applies to these layouts), comparisons, copies between every
// pair of dtypes with strided source and destination, fill and where; and
// the errors for what has no kernel.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "copy_args.hpp"
#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "pointwise_args.hpp"

namespace {

using namespace loom;
using kernels::Binary;
using kernels::Compare;
using kernels::Unary;

void no_status(int, const char*) {}

const DType kAll[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::boolean};

double tolerance(DType t) {
  switch (t) {
    case DType::f32: return 1e-5;
    case DType::f64: return 1e-12;
    case DType::bf16: return 1e-2;
    case DType::f16: return 2e-3;
    default: return 0;  // integers: exact
  }
}

void check_close(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  REQUIRE(got.dtype() == want.dtype());
  const std::vector<double> g = got.to(DType::f64).contiguous().to_vector<double>();
  const std::vector<double> w = want.to(DType::f64).contiguous().to_vector<double>();
  const double tol = tolerance(got.dtype());
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i])) {
      CHECK(std::isnan(g[i]));
    } else {
      CHECK(std::abs(g[i] - w[i]) <= tol * (std::abs(w[i]) + 1.0));
    }
  }
}

// A [4, 6] tensor of dtype t laid out transposed (a [6, 4] buffer viewed .t()).
Tensor transposed(DType t, Generator& gen, bool positive) {
  Tensor base = positive ? add(rand({6, 4}, DType::f64, &gen), 0.5) : mul(randn({6, 4}, DType::f64, &gen), 3.0);
  return base.to(t).t();
}

}  // namespace

TEST_CASE("emulated strided unary kernels and derivatives match the CPU in every dtype", "[strided]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(81);
  const Unary ops[] = {Unary::neg,  Unary::exp,       Unary::log,  Unary::sqrt,  Unary::rsqrt,
                       Unary::abs,  Unary::tanh,      Unary::sigmoid, Unary::relu, Unary::gelu_erf,
                       Unary::gelu_tanh, Unary::silu, Unary::clamp, Unary::pow_scalar};
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    for (Unary op : ops) {
      const bool integer_ok = op == Unary::neg || op == Unary::abs || op == Unary::relu || op == Unary::clamp;
      if (!is_floating(t) && !integer_ok) continue;
      kernels::UnaryParams p;
      if (op == Unary::clamp) p.lo = -0.5, p.hi = 0.7, p.has_lo = p.has_hi = true;
      if (op == Unary::pow_scalar) p.exponent = 2.5;
      const bool positive = op == Unary::log || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::pow_scalar;
      const std::string name = "unary " + std::string(kernels::op_name(op)) + " " + dtype_name(t);
      Tensor x = transposed(t, gen, positive);
      Tensor want = empty({4, 6}, t), got = empty({6, 4}, t).t();  // a strided output too
      cpu.unary(op, x, want, p);
      pointwise::run_unary(op, x, got, p, {}, no_status);
      check_close(got, want, name);
      if (!is_floating(t)) continue;
      Tensor g = transposed(t, gen, false);
      Tensor want_dx = empty({4, 6}, t), got_dx = empty({6, 4}, t).t();
      cpu.unary_backward(op, g, x, want, want_dx, p);
      pointwise::run_unary_backward(op, g, x, want, got_dx, p, {}, no_status);
      check_close(got_dx, want_dx, name + " backward");
    }
  }
}

TEST_CASE("emulated strided binary kernels and comparisons match the CPU, broadcasting", "[strided]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(82);
  for (DType t : kAll) {
    Tensor a = transposed(t, gen, false);
    Tensor b = add(rand({1, 6}, DType::f64, &gen), 0.5).to(t).expand({4, 6});  // a row, broadcast down
    if (t != DType::boolean && t != DType::u8) {
      for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div, Binary::pow, Binary::maximum,
                        Binary::minimum}) {
        if (!is_floating(t) && (op == Binary::div || op == Binary::pow)) continue;
        Tensor x = op == Binary::pow ? transposed(t, gen, true) : a;
        Tensor want = empty({4, 6}, t), got = empty({4, 6}, t);
        cpu.binary(op, x, b, want);
        pointwise::run_binary(op, x, b, got, {}, no_status);
        check_close(got, want, "binary " + std::string(kernels::op_name(op)) + " " + dtype_name(t));
      }
    }
    for (Compare op : {Compare::eq, Compare::ne, Compare::lt, Compare::le, Compare::gt, Compare::ge}) {
      Tensor want = empty({4, 6}, DType::boolean), got = empty({4, 6}, DType::boolean);
      cpu.compare(op, a, b, want);
      pointwise::run_compare(op, a, b, got, {}, no_status);
      check_close(got, want, "compare " + std::to_string(static_cast<int>(op)) + " " + dtype_name(t));
    }
  }
}

TEST_CASE("emulated strided pointwise calls without a kernel say so", "[strided]") {
  Tensor u = zeros({3}, DType::u8), f = zeros({3}, DType::boolean);
  CHECK_THROWS_WITH(pointwise::run_binary(Binary::add, u, u, empty({3}, DType::u8), {}, no_status),
                    Catch::Contains("op add has no CUDA kernel yet (dtype u8)"));
  CHECK_THROWS_WITH(pointwise::run_binary(Binary::add, f, f, empty({3}, DType::boolean), {}, no_status),
                    Catch::Contains("arithmetic on bool tensors is not defined"));
  Tensor i = zeros({3}, DType::i32);
  CHECK_THROWS_WITH(pointwise::run_unary(Unary::exp, i, empty({3}, DType::i32), {}, {}, no_status),
                    Catch::Contains("exp: expected a floating tensor, got i32"));
}

TEST_CASE("emulated copies between every pair of dtypes match the CPU's conversions, strided both sides",
          "[strided]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(83);
  for (DType from : kAll) {
    Tensor src = transposed(from, gen, false);
    for (DType to : kAll) {
      Tensor want = empty({4, 6}, to), got = empty({6, 4}, to).t();
      cpu.copy(src, want);
      copy_kernels::run_copy(src, got, {}, no_status);
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      // Conversions are exact functions of the input: bit for bit.
      CHECK(got.contiguous().to(DType::f64).to_vector<double>() == want.to(DType::f64).to_vector<double>());
    }
  }
}

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.dtype() == y.dtype() && x.shape() == y.shape() &&
         std::memcmp(x.raw_data(), y.raw_data(), static_cast<size_t>(x.numel()) * itemsize(x.dtype())) == 0;
}

}  // namespace

TEST_CASE("emulated run copies match the CPU bit for bit: permutes keeping the last dim, slices, float casts",
          "[strided]") {
  // Both sides step one element along the last dim: the run kernels take
  // these (vectors of 4 to 16 bytes where the layout allows, else the general
  // kernel), into dense and into sliced destinations.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(89);
  const DType floats[] = {DType::f32, DType::bf16, DType::f16};
  for (DType from : kAll) {
    Tensor base = mul(randn({2, 5, 3, 8}, DType::f64, &gen), 3.0);
    base.narrow(3, 2, 1).fill_(NAN);  // a NaN in every row: its bits must survive a cast
    const Tensor b = base.to(from);
    const Tensor flat = mul(randn({57}, DType::f64, &gen), 3.0).to(from);
    const std::vector<std::pair<std::string, Tensor>> sources = {
        {"permute (runs of 8)", b.permute({0, 2, 1, 3})},
        {"dense (one run)", b.reshape({30, 8})},
        {"slice at offset 4 (runs of 4)", b.narrow(3, 4, 4)},
        {"slice at offset 1 (runs of 7)", b.narrow(3, 1, 7)},
        {"every other row (row stride 16)", b.reshape({15, 16}).narrow(1, 8, 8)},
        {"one row repeated (a stride-0 row)", b.reshape({30, 8}).narrow(0, 3, 1).expand({5, 8})},
        {"rows of 8 from one element in (unaligned base, aligned rows)", flat.narrow(0, 1, 56).reshape({7, 8})},
        {"a scalar", b.reshape({240}).narrow(0, 5, 1).reshape({})}};
    for (DType to : kAll) {
      const bool cast_between_floats =
          std::find(std::begin(floats), std::end(floats), from) != std::end(floats) &&
          std::find(std::begin(floats), std::end(floats), to) != std::end(floats);
      if (from != to && !cast_between_floats) continue;
      for (const auto& [name, src] : sources) {
        // dense, and (for a tensor with a last dim) the middle of wider rows
        Shape wide = src.shape();
        if (!wide.empty()) wide.back() += 4;
        const Tensor dense = empty(src.shape(), to);
        const Tensor sliced = wide.empty() ? dense : empty(wide, to).narrow(-1, 4, src.size(-1));
        const std::vector<Tensor> destinations{dense, sliced};
        for (const Tensor& got : destinations) {
          Tensor want = empty(src.shape(), to);
          cpu.copy(src, want);
          copy_kernels::run_copy(src, got, {}, no_status);
          INFO(dtype_name(from) << " -> " << dtype_name(to) << ", " << name
                                << (got.is_contiguous() ? ", dense" : ", into a slice"));
          CHECK(same_bits(got, want));
        }
      }
    }
  }
}

TEST_CASE("emulated transposing copies match the CPU bit for bit, in tiles and not", "[strided]") {
  // The kernel variant copy_transpose_tiles against the CPU, and the copy as
  // it is: tiles cut mid-way at the edges, an outer dim on either side, every
  // element width, into dense and into sliced destinations.
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(91);
  const bool transpose_tiles = GENERATE(false, true);
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::u8}) {
    const auto make = [&](const Shape& shape) { return mul(randn(shape, DType::f64, &gen), 40.0).to(t); };
    const std::vector<std::pair<std::string, Tensor>> sources = {
        {"[70, 45] transposed", make({70, 45}).t()},
        {"[3, 40, 33] -> [3, 33, 40]", make({3, 40, 33}).transpose(1, 2)},
        {"[2, 20, 3, 17] channels last", make({2, 20, 3, 17}).permute({0, 2, 3, 1})},
        {"a slice of a transpose (row stride 2)", make({64, 48}).t().slice(1, 0, 64, 2)},
        {"a short dim (runs, not tiles)", make({40, 5}).t()}};
    for (const auto& [name, src] : sources) {
      Shape wide = src.shape();
      wide.back() += 3;
      const std::vector<Tensor> destinations{empty(src.shape(), t), empty(wide, t).narrow(-1, 1, src.size(-1))};
      for (Tensor got : destinations) {
        Tensor want = empty(src.shape(), t);
        cpu.copy(src, want);
        NoGradGuard no_grad;
        got.fill_(0);
        copy_kernels::run_copy(src, got, {}, no_status, transpose_tiles);
        INFO(dtype_name(t) << ", " << name << (got.is_contiguous() ? ", dense" : ", into a slice")
                           << (transpose_tiles ? ", in tiles" : ""));
        CHECK(same_bits(got, want));
      }
    }
  }
}

TEST_CASE("emulated fill and where match the CPU in every dtype", "[strided]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(84);
  for (DType t : kAll) {
    Tensor one = empty({}, t);
    cpu.fill(one, 2.75);
    unsigned char bits[8] = {};
    std::memcpy(bits, one.raw_data(), itemsize(t));
    Tensor got = empty({6, 4}, t).t();
    copy_kernels::run_fill(got, bits, {}, no_status);
    Tensor want = empty({4, 6}, t);
    cpu.fill(want, 2.75);
    CHECK(got.contiguous().to(DType::f64).to_vector<double>() == want.to(DType::f64).to_vector<double>());

    Tensor cond = lt(rand({4, 1}, DType::f64, &gen), full({4, 1}, 0.5, DType::f64)).expand({4, 6});
    Tensor a = transposed(t, gen, false), b = full({1, 6}, 1.0, DType::f64).to(t).expand({4, 6});
    Tensor want_w = empty({4, 6}, t), got_w = empty({4, 6}, t);
    cpu.where(cond, a, b, want_w);
    copy_kernels::run_where(cond, a, b, got_w, {}, no_status);
    INFO("where " << dtype_name(t));
    CHECK(got_w.to(DType::f64).to_vector<double>() == want_w.to(DType::f64).to_vector<double>());
  }
}
