// The deterministic index_add's row sums (cuda/segment_sum.cuh) on the SIMT
// emulator against the CPU's index_add: indices sorted stably (as cub's radix
// sort does on the device; std::stable_sort here), then one warp per run of
// equal indices.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "segment_sum.cuh"

namespace {

namespace ss = loom::segment_sum;

// dst [rows, inner] += src [n, inner] scattered by index, through the kernels.
template <class T>
void emulated_index_add(const std::vector<int32_t>& index, const std::vector<T>& src, int64_t inner,
                        std::vector<T>& dst) {
  const int64_t n = static_cast<int64_t>(index.size());
  std::vector<int32_t> positions(n);
  loom::simt::launch(loom::simt::Dim3(ss::blocks_for(n, ss::kThreads)), loom::simt::Dim3(ss::kThreads), 0, {},
                     ss::iota_kernel, positions.data(), n);
  std::stable_sort(positions.begin(), positions.end(), [&](int32_t a, int32_t b) { return index[a] < index[b]; });
  std::vector<int32_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = index[positions[i]];
  loom::simt::launch(loom::simt::Dim3(ss::blocks_for(n, ss::kWarps)), loom::simt::Dim3(ss::kThreads), 0, {},
                     ss::rows_kernel<T>, static_cast<const int32_t*>(keys.data()),
                     static_cast<const int32_t*>(positions.data()), n, static_cast<const T*>(src.data()), inner,
                     dst.data());
}

}  // namespace

TEST_CASE("deterministic index_add rows equal the CPU's sequential sum, bit for bit from zero", "[segment_sum]") {
  const int64_t rows = 37, inner = 45, n = 300;  // inner > 32: two column passes per lane
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> pick(0, rows - 1);
  std::vector<int32_t> index(n);
  for (int32_t& i : index) i = pick(rng) % 9 == 0 ? 4 : pick(rng);  // row 4 is hit often: a long run
  loom::Generator gen(2);
  const loom::Tensor src = loom::randn({n, inner}, {}, &gen);
  const std::vector<float> src_values = src.to_vector<float>();

  loom::Tensor want = loom::zeros({rows, inner});
  std::vector<int64_t> index64(index.begin(), index.end());
  loom::kernels::backend(loom::kCPU).index_add(src, 0, loom::from_vector(index64, {n}), want);
  std::vector<float> got(rows * inner, 0.0f);
  emulated_index_add<float>(index, src_values, inner, got);
  CHECK(got == want.to_vector<float>());

  SECTION("onto a non-zero destination: each row's sum added once (within rounding)") {
    const loom::Tensor base = loom::randn({rows, inner}, {}, &gen);
    loom::Tensor want2 = base.clone();
    loom::kernels::backend(loom::kCPU).index_add(src, 0, loom::from_vector(index64, {n}), want2);
    std::vector<float> got2 = base.to_vector<float>();
    emulated_index_add<float>(index, src_values, inner, got2);
    const std::vector<float> w = want2.to_vector<float>();
    for (size_t i = 0; i < w.size(); ++i) {
      INFO("element " << i);
      REQUIRE(std::abs(got2[i] - w[i]) <= 1e-5f * (1.0f + std::abs(w[i])));
    }
  }
  SECTION("f64, and rows no index touches stay as they were") {
    std::vector<double> src64(src_values.begin(), src_values.end()), got64(rows * inner, 7.0);
    std::vector<int32_t> some(index.begin(), index.begin() + 5);
    emulated_index_add<double>(some, src64, inner, got64);
    for (int64_t r = 0; r < rows; ++r) {
      const bool touched = std::find(some.begin(), some.end(), r) != some.end();
      double expect0 = 7.0;
      for (size_t j = 0; j < some.size(); ++j)
        if (some[j] == r) expect0 += src64[j * inner];
      INFO("row " << r << (touched ? " (touched)" : ""));
      CHECK(got64[r * inner] == Approx(expect0).epsilon(1e-12));
    }
  }
}

TEST_CASE("deterministic algorithms are a process-wide switch, off by default", "[segment_sum]") {
  CHECK_FALSE(loom::deterministic_algorithms());
  loom::set_deterministic_algorithms(true);
  CHECK(loom::deterministic_algorithms());
  loom::set_deterministic_algorithms(false);
  CHECK_FALSE(loom::deterministic_algorithms());
}
