// matmul on the CPU against a float64 reference computed here element by
// element: ragged sizes around the register tiles (14 x 32 on AVX-512, 6 x 16
// with 8 lanes on AVX2) and the cache blocks,
// k = 0, batches (broadcast ones too), all four transpose combinations,
// sliced and step-2 views, several pool sizes (which change how products are
// split between threads, depth splits included), and f64.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include <loom/loom.hpp>

using namespace loom;

namespace {

// Restores the default pool size when a test leaves.
struct PoolSize {
  explicit PoolSize(int n) { set_num_threads(n); }
  ~PoolSize() { set_num_threads(0); }
};

std::string describe(const Tensor& a, const Tensor& b) {
  return shape_str(a.shape()) + " strides " + shape_str(a.strides()) + " x " + shape_str(b.shape()) + " strides " +
         shape_str(b.strides());
}

// a [batch, m, k] x b [batch, k, n], compared with a float64 product; the
// tolerance grows with k: 16 ulp of f32 per term, on the scale of the terms.
template <class T>
void check_product(const Tensor& a, const Tensor& b) {
  INFO(describe(a, b));
  const Tensor c = matmul(a, b);
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  REQUIRE(c.shape() == Shape{batch, m, n});
  const std::vector<T> av = a.to_vector<T>(), bv = b.to_vector<T>(), cv = c.to_vector<T>();
  const double eps = std::is_same_v<T, float> ? 6e-8 : 1.2e-16;
  int64_t bad = 0;
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t col = 0; col < n; ++col) {
        double sum = 0, squares = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double term =
              static_cast<double>(av[(i * m + r) * k + p]) * static_cast<double>(bv[(i * k + p) * n + col]);
          sum += term;
          squares += term * term;
        }
        const double scale = k > 0 ? std::sqrt(squares / static_cast<double>(k)) : 0.0;
        const double tolerance = 16 * eps * static_cast<double>(k) * scale;
        const double got = static_cast<double>(cv[(i * m + r) * n + col]);
        if (!(std::abs(got - sum) <= tolerance) && bad++ < 5) {
          INFO("c[" << i << "," << r << "," << col << "] = " << got << ", reference " << sum << ", tolerance "
                    << tolerance);
          CHECK(false);
        }
      }
  CHECK(bad == 0);
}

// A [batch, rows, cols] operand, stored transposed ([batch, cols, rows], viewed back) when `transposed`.
Tensor operand(int64_t batch, int64_t rows, int64_t cols, bool transposed, Generator& gen, DType dtype = DType::f32) {
  if (transposed) return randn({batch, cols, rows}, dtype, &gen).transpose(1, 2);
  return randn({batch, rows, cols}, dtype, &gen);
}

void check_all_transposes(int64_t batch, int64_t m, int64_t n, int64_t k, Generator& gen) {
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      check_product<float>(operand(batch, m, k, ta, gen), operand(batch, k, n, tb, gen));
}

}  // namespace

TEST_CASE("f32 matmul matches float64 on ragged small shapes", "[gemm]") {
  Generator gen(11);
  const std::vector<int64_t> sizes = {1, 2, 3, 5, 6, 7, 8, 9, 13, 15, 16, 17, 31, 33};
  for (const int64_t m : sizes)
    for (const int64_t n : sizes)
      for (const int64_t k : sizes) check_all_transposes(1, m, n, k, gen);
}

TEST_CASE("f32 matmul matches float64 across cache blocks and thread splits", "[gemm]") {
  Generator gen(12);
  struct Case {
    int64_t m, n, k;
  };
  // Beyond one depth block (384 or 1024) and one column block (1024); primes;
  // long-depth small outputs that are split over depth; wide, short ones split
  // over columns; whole and ragged row blocks of both tiles (192 = 32 x 6, 448 = 32 x 14).
  const std::vector<Case> cases = {{100, 257, 67},  {257, 100, 300}, {13, 545, 263}, {127, 33, 1031},
                                   {29, 1100, 64},  {64, 16, 2053},  {3, 5, 4099},   {1, 1, 1000},
                                   {521, 48, 16},   {14, 32, 512},   {28, 64, 257},  {2, 700, 3},
                                   {193, 40, 513},  {449, 24, 130},  {12, 1030, 40}, {6, 8, 1025}};
  for (const int threads : {1, 2, 3}) {
    PoolSize pool(threads);
    INFO("threads " << threads);
    for (const Case& c : cases) check_all_transposes(1, c.m, c.n, c.k, gen);
  }
}

TEST_CASE("f32 matmul with k = 0 gives zeros", "[gemm]") {
  for (const DType dtype : {DType::f32, DType::f64}) {
    const Tensor c = matmul(empty({5, 0}, dtype), empty({0, 37}, dtype));
    REQUIRE(c.shape() == Shape{5, 37});
    for (const double x : c.to(DType::f64).to_vector<double>()) CHECK(x == 0.0);
  }
  PoolSize pool(2);
  const Tensor big = matmul(empty({3, 300, 0}), empty({3, 0, 200}));
  for (const float x : big.to_vector<float>()) REQUIRE(x == 0.0f);
}

TEST_CASE("f32 matmul over batches, broadcast batches included", "[gemm]") {
  Generator gen(13);
  for (const int threads : {1, 2, 3}) {
    PoolSize pool(threads);
    INFO("threads " << threads);
    for (const int64_t batch : {2, 3, 5}) {
      check_all_transposes(batch, 17, 33, 15, gen);
      check_all_transposes(batch, 100, 70, 257, gen);
    }
    // One B for every A (stride-0 batch), and the reverse.
    const Tensor a = randn({4, 30, 20}, {}, &gen), b = randn({20, 45}, {}, &gen);
    check_product<float>(a, b.unsqueeze(0).expand({4, 20, 45}));
    check_product<float>(b.t().unsqueeze(0).expand({4, 45, 20}), a.transpose(1, 2));
  }
}

TEST_CASE("a batched A times one 2-D B is one product: values, both gradients, k = 0, a strided A", "[gemm]") {
  // [B, M, K] x [K, N] runs as [B*M, K] x [K, N] when A is dense; against the
  // batched product of the same B broadcast to every batch (stride-0 views).
  Generator gen(16);
  const auto dense = [](const Tensor& t) { return t.detach().contiguous().to(DType::f64).to_vector<double>(); };
  const auto close = [](const std::vector<double>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-12 * (1 + std::abs(want[i])));
  };
  const Tensor a_base = randn({3, 7, 5}, DType::f64, &gen), b_base = randn({5, 4}, DType::f64, &gen);
  const Tensor g = randn({3, 7, 4}, DType::f64, &gen);
  for (const bool strided : {false, true}) {
    INFO((strided ? "A transposed (the batched path)" : "A dense (one product)"));
    Tensor a = (strided ? a_base.transpose(1, 2).contiguous().transpose(1, 2) : a_base.clone()).requires_grad_(true);
    Tensor b = b_base.clone().requires_grad_(true);
    Tensor a2 = a_base.clone().requires_grad_(true), b2 = b_base.clone().requires_grad_(true);
    const Tensor got = matmul(a, b), want = matmul(a2, b2.unsqueeze(0).expand({3, 5, 4}));
    REQUIRE(got.shape() == Shape{3, 7, 4});
    close(dense(got), dense(want));
    got.backward(g);
    want.backward(g);
    close(dense(a.grad()), dense(a2.grad()));
    close(dense(b.grad()), dense(b2.grad()));
  }
  const Tensor none = matmul(empty({3, 4, 0}), empty({0, 5}));
  REQUIRE(none.shape() == Shape{3, 4, 5});
  for (const float x : none.to_vector<float>()) CHECK(x == 0.0f);
  CHECK_THROWS_WITH(matmul(empty({2, 3, 4}), empty({5, 6})),
                    Catch::Contains("inner dimensions differ, [2, 3, 4] x [5, 6]"));
}

TEST_CASE("f32 matmul reads sliced and step-2 views in place", "[gemm]") {
  Generator gen(14);
  for (const int threads : {1, 2}) {
    PoolSize pool(threads);
    const Tensor wide = randn({1, 70, 90}, {}, &gen), tall = randn({1, 120, 60}, {}, &gen);
    // Column slice: row stride 90, unit column stride.
    check_product<float>(wide.narrow(2, 7, 41), tall.narrow(1, 3, 41).narrow(2, 0, 37));
    // Step 2 along both axes: no unit stride at all.
    check_product<float>(wide.slice(1, 0, 70, 2).slice(2, 1, 90, 2), tall.slice(1, 0, 89, 2).slice(2, 0, 60, 2));
    // Transposed step-2 view times a transposed column slice.
    check_product<float>(tall.slice(1, 1, 120, 2).transpose(1, 2), wide.narrow(1, 0, 60).narrow(2, 5, 33));
    // One row (its own loops): strided row times step-2 B, and times a column-major B.
    check_product<float>(wide.narrow(1, 3, 1).slice(2, 1, 90, 2), tall.slice(1, 0, 89, 2).slice(2, 0, 60, 2));
    check_product<float>(tall.narrow(2, 7, 1).transpose(1, 2), randn({1, 37, 120}, {}, &gen).transpose(1, 2));
  }
}

TEST_CASE("f64 matmul keeps its Eigen path", "[gemm]") {
  Generator gen(15);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      check_product<double>(operand(2, 33, 17, ta, gen, DType::f64), operand(2, 17, 29, tb, gen, DType::f64));
}
