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
                        // many spans per output: a block combines each output's partials
                        // (several per thread at 600 spans)
                        {1, 5000, 1, 600}, {3, 4000, 2, 100}};
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
