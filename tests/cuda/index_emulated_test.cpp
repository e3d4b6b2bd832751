// The indexing kernels of cuda/index_kernels.cuh on the SIMT emulator against
// the CPU backend's: index_select and index_add along each dim of a strided
// tensor with i32 and i64 indices (repeated ones included: the atomic adds
// then meet in one slot; small integers keep every order exact), gather, and
// scatter plain (distinct targets) and adding (repeated targets), in the
// dtypes each takes.
#include <catch2/catch.hpp>

#include <string>

#include "index_args.hpp"
#include "kernels/backend.hpp"
#include "loom/loom.hpp"

namespace {

using namespace loom;

void no_status(int, const char*) {}

std::vector<double> values(const Tensor& t) { return t.contiguous().to(DType::f64).to_vector<double>(); }

// Small integers in dtype t, laid out transposed: [rows, cols] viewing a [cols, rows] buffer.
Tensor strided_ints(int64_t rows, int64_t cols, DType t, Generator& gen) {
  return randint(-4, 5, {cols, rows}, DType::i64, &gen).to(t).t();
}

}  // namespace

TEST_CASE("emulated index_select and index_add match the CPU along each dim, i32 and i64 indices", "[index]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(91);
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64}) {
    for (DType it : {DType::i64, DType::i32}) {
      for (int64_t dim : {0, 1}) {
        INFO(dtype_name(t) << " index " << dtype_name(it) << " dim " << dim);
        Tensor x = strided_ints(5, 4, t, gen);
        const int64_t size = x.size(dim);
        Tensor index = from_vector<int64_t>({2, 0, size - 1, 2, 1, 2}, {6}).to(it);  // repeats
        Shape out_shape = x.shape();
        out_shape[static_cast<size_t>(dim)] = 6;
        Tensor want = empty(out_shape, t), got = empty(out_shape, t);
        cpu.index_select(x, dim, index, want);
        index_kernels::run_index_select(x, dim, index, got, {}, no_status);
        CHECK(values(got) == values(want));
        if (t != DType::f32 && t != DType::f64) continue;  // index_add: f32, f64
        Tensor g = strided_ints(out_shape[0], out_shape[1], t, gen);
        Tensor want_gx = zeros(x.shape(), t), got_gx = zeros(x.shape(), t);
        cpu.index_add(g, dim, index, want_gx);
        index_kernels::run_index_add(g, dim, index, got_gx, {}, no_status);
        CHECK(values(got_gx) == values(want_gx));
      }
    }
  }
}

TEST_CASE("emulated gather and scatter match the CPU, scatter-add sums repeated targets", "[index]") {
  const kernels::Backend& cpu = kernels::backend(kCPU);
  Generator gen(92);
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16}) {
    for (int64_t dim : {0, 1}) {
      INFO(dtype_name(t) << " dim " << dim);
      Tensor x = strided_ints(4, 5, t, gen);
      Tensor index = randint(0, x.size(dim), {3, 4}, DType::i64, &gen);  // repeats along dim
      Tensor want = empty({3, 4}, t), got = empty({3, 4}, t);
      cpu.gather(x, dim, index, want);
      index_kernels::run_gather(x, dim, index, got, {}, no_status);
      CHECK(values(got) == values(want));

      Tensor src = strided_ints(3, 4, t, gen);
      if (t != DType::bf16) {  // scatter-add: f32, f64, i32, i64
        Tensor want_add = zeros({4, 5}, t), got_add = zeros({4, 5}, t);
        cpu.scatter(want_add, dim, index, src, true);
        index_kernels::run_scatter(got_add, dim, index, src, true, {}, no_status);
        CHECK(values(got_add) == values(want_add));
      }
      // plain scatter: one source per target (the indices along dim are distinct)
      const Tensor distinct = dim == 0 ? from_vector<int64_t>({0, 1, 2, 3, 1, 2, 3, 0, 2, 3, 0, 1}, {3, 4})
                                       : from_vector<int64_t>({0, 1, 2, 3, 4, 3, 2, 1, 1, 0, 4, 2}, {3, 4});
      Tensor want_set = zeros({4, 5}, t), got_set = zeros({4, 5}, t);
      cpu.scatter(want_set, dim, distinct, src, false);
      index_kernels::run_scatter(got_set, dim, distinct, src, false, {}, no_status);
      CHECK(values(got_set) == values(want_set));
    }
  }
  CHECK_THROWS_WITH(index_kernels::run_scatter(zeros({4}, DType::bf16), 0, zeros({2}, DType::i64),
                                               zeros({2}, DType::bf16), true, {}, no_status),
                    Catch::Contains("op scatter_add has no CUDA kernel yet (dtype bf16)"));
}
