// The reduction kernels of cuda/reduce.cuh on the SIMT emulator against the
// CPU backend's: sum, max and argmax over [outer, r, inner] with one column
// or tiles of up to 32 (partial last tiles), r in one span or cut into spans
// combined by the second kernel (the plan's own choice and forced counts,
// uneven last span), ties (the first index wins) and NaN (the first NaN wins).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "reduce_args.hpp"

namespace {

using namespace loom;
using kernels::Reduce;

void no_status(int, const char*) {}

}  // namespace

TEST_CASE("emulated reductions match the CPU: sum, max, argmax, tiles and spans, ties and NaN", "[reduce]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(71);
  struct Case {
    int64_t outer, r, inner, force_spans;
  };
  const Case cases[] = {{1, 1000, 1, 0}, {1, 1000, 1, 3}, {1, 1001, 1, 7}, {3, 50, 5, 0}, {2, 7, 40, 0},
                        {4, 300, 33, 2}, {1, 40000, 1, 0}, {5, 1, 3, 0},
                        // contiguous spans read in packs, with a ragged end; and rows off a 16-byte boundary
                        {1, 40003, 1, 0}, {3, 40001, 1, 0},
                        // more than kBlockCombineSpans spans: a block combines each output's partials
                        {1, 130, 1, 65}};
  for (DType t : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      const Shape shape{c.outer, c.r, c.inner};
      // Small integers: many ties for max/argmax; exact sums in f32 too.
      Tensor x = randint(0, 9, shape, DType::i64, &gen).to(DType::f64);
      if (c.r > 10) {
        NoGradGuard no_grad;
        x.narrow(1, c.r / 2, 1).narrow(0, 0, 1).fill_(NAN);  // outer 0 sees a NaN mid-way
        x.narrow(1, c.r - 1, 1).narrow(0, 0, 1).fill_(NAN);  // and another after it
      }
      x = x.to(t);
      for (Reduce op : {Reduce::sum, Reduce::max, Reduce::argmax}) {
        const std::string name = std::string(op == Reduce::sum ? "sum" : op == Reduce::max ? "max" : "argmax") + " [" +
                                 std::to_string(c.outer) + ", " + std::to_string(c.r) + ", " + std::to_string(c.inner) +
                                 "] spans " + std::to_string(c.force_spans) + " " + dtype_name(t);
        INFO(name);
        const DType out_type = op == Reduce::argmax ? DType::i64 : t;
        Tensor want = empty({c.outer, c.inner}, out_type), got = empty({c.outer, c.inner}, out_type);
        cpu.reduce(op, x, c.outer, c.r, c.inner, want);
        reduce_kernels::run(op, x, c.outer, c.r, c.inner, got, {}, no_status, c.force_spans);
        const std::vector<double> w = want.to(DType::f64).to_vector<double>(), g = got.to(DType::f64).to_vector<double>();
        for (size_t i = 0; i < w.size(); ++i) {
          if (std::isnan(w[i])) {
            CHECK(std::isnan(g[i]));
          } else {
            CHECK(g[i] == w[i]);  // integer sums are exact in either order
          }
        }
      }
    }
  }
}

TEST_CASE("the reduction plan cuts long axes of few tiles into spans, and nothing else", "[reduce]") {
  using reduce_kernels::plan_for;
  const auto whole = plan_for(1, int64_t{64} << 20, 1, 0);  // sum of a 64M-element tensor
  CHECK(whole.spans == reduce_kernels::kTargetBlocks);
  CHECK(whole.span * whole.spans >= (int64_t{64} << 20));
  CHECK(plan_for(4096, 1024, 1, 0).spans == 1);  // rows enough to fill the grid
  CHECK(plan_for(1, 100, 1, 0).spans == 1);      // too short to split
  const auto uneven = plan_for(1, 10, 1, 4);     // spans of 3, 3, 3, 1
  CHECK(uneven.span == 3);
  CHECK(uneven.spans == 4);
}

TEST_CASE("the block that combines an output's partials takes several per thread, in a fixed order", "[reduce]") {
  // 600 partials for each of two outputs, so each of the 256 threads adds two
  // or three: against the plain sum (sums), and the first maximal index with
  // ties and a NaN (max, argmax).
  using namespace reduce_kernels;
  constexpr int64_t kSpans = 600, kOutputs = 2;
  Generator gen(71);
  const std::vector<double> sums = randn({kOutputs * kSpans}, DType::f64, &gen).to_vector<double>();
  std::vector<double> values(kOutputs * kSpans);
  std::vector<int64_t> index(kOutputs * kSpans);
  for (int64_t i = 0; i < kOutputs * kSpans; ++i) {
    values[i] = static_cast<double>((i * 37) % 101);  // many ties at 100
    index[i] = i % kSpans;                            // the span's first row, as reduce_kernel writes it
  }
  values[kSpans + 450] = NAN;  // the second output's maximum, whatever follows
  std::vector<double> out(kOutputs, -1.0);
  std::vector<int64_t> out_index(kOutputs, -1);
  Reduction<double> a{nullptr, 1, kSpans, kOutputs, 1, kOutputs, kSpans, 1, 1,
                      out.data(), out_index.data(), const_cast<double*>(sums.data()), values.data(), index.data()};
  REQUIRE(kSpans > kBlockCombineSpans);
  simt::launch(Dim3(1), Dim3(kThreads), kSharedBytes, {}, combine_spans_block_kernel<double, kSum>, a);
  for (int64_t o = 0; o < kOutputs; ++o) {
    double want = 0;
    for (int64_t sp = 0; sp < kSpans; ++sp) want += sums[o * kSpans + sp];
    CHECK(std::abs(out[o] - want) <= 1e-12 * kSpans);
  }
  simt::launch(Dim3(1), Dim3(kThreads), kSharedBytes, {}, combine_spans_block_kernel<double, kArgmax>, a);
  int64_t first = -1;  // the first output's maximum, 100, first reached at the lowest such span
  for (int64_t sp = 0; sp < kSpans && first < 0; ++sp)
    if (values[sp] == 100.0) first = sp;
  CHECK(out_index[0] == first);
  CHECK(out_index[1] == 450);
  simt::launch(Dim3(1), Dim3(kThreads), kSharedBytes, {}, combine_spans_block_kernel<double, kMax>, a);
  CHECK(out[0] == 100.0);
  CHECK(std::isnan(out[1]));
}
