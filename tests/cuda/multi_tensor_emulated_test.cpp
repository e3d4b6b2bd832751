// The multi-tensor kernels of cuda/multi_tensor.cuh on the SIMT emulator
// against the CPU: the batch planner, AdamW over many tensors, the sum of
// squares behind the gradient norm.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "kernels/backend.hpp"
#include "loom/core/cuda.hpp"
#include "loom/loom.hpp"
#include "multi_tensor.cuh"

namespace {

using loom::Tensor;
namespace mt = loom::multi_tensor;

// Sizes around the chunk and batch limits: empty, tiny, one chunk, one chunk
// and one element, several chunks; 31 tensors (more than one batch holds).
std::vector<int64_t> awkward_sizes() {
  std::vector<int64_t> sizes = {1, 0, 7, mt::kChunk, mt::kChunk + 1, 3 * mt::kChunk - 5, 768, 0};
  for (int i = 0; i < 23; ++i) sizes.push_back(17 * i + 3);
  return sizes;
}

}  // namespace

TEST_CASE("multi-tensor batches cover every chunk of every tensor once, within the limits", "[multi_tensor]") {
  std::vector<int64_t> sizes = awkward_sizes();
  sizes.push_back(int64_t{mt::kMaxBlocks} * mt::kChunk * 2 + 9);  // spans three launches by itself
  for (int i = 0; i < 40; ++i) sizes.push_back(mt::kChunk * (i % 3) + i);
  std::vector<std::array<void*, 1>> ptrs;
  for (size_t t = 0; t < sizes.size(); ++t) ptrs.push_back({reinterpret_cast<void*>(0x1000 * (t + 1))});

  std::map<std::pair<size_t, int64_t>, int> seen;  // (tensor, chunk) -> times
  int64_t next_first = 0;
  const int64_t total = mt::for_each_batch<1>(ptrs, sizes, [&](const mt::Batch<1>& b, int blocks) {
    REQUIRE(blocks >= 1);
    REQUIRE(blocks <= mt::kMaxBlocks);
    CHECK(b.first_block == next_first);  // reductions place partials by it
    next_first += blocks;
    for (int k = 0; k < blocks; ++k) {
      const int slot = b.tensor_of[k];
      REQUIRE(slot < mt::kMaxTensors);
      const size_t t = reinterpret_cast<uintptr_t>(b.ptr[0][slot]) / 0x1000 - 1;
      REQUIRE(b.size[slot] == sizes[t]);
      REQUIRE(static_cast<int64_t>(b.chunk_of[k]) * mt::kChunk < sizes[t]);
      ++seen[{t, b.chunk_of[k]}];
    }
  });
  int64_t chunks = 0;
  for (size_t t = 0; t < sizes.size(); ++t)
    for (int64_t c = 0; c * mt::kChunk < sizes[t]; ++c, ++chunks) {
      INFO("tensor " << t << " (" << sizes[t] << " elements), chunk " << c);
      CHECK(seen[{t, c}] == 1);
    }
  CHECK(total == chunks);
  CHECK(next_first == chunks);
}

TEST_CASE("multi-tensor AdamW on the emulator equals the CPU's per-tensor update", "[multi_tensor]") {
  const std::vector<int64_t> sizes = awkward_sizes();
  loom::Generator gen(5);
  std::vector<Tensor> p_cpu, g_cpu, m_cpu, v_cpu;
  for (int64_t n : sizes) {
    p_cpu.push_back(loom::randn({n}, {}, &gen));
    g_cpu.push_back(loom::randn({n}, {}, &gen));
    m_cpu.push_back(loom::mul(loom::randn({n}, {}, &gen), 0.1));
    v_cpu.push_back(loom::abs(loom::mul(loom::randn({n}, {}, &gen), 0.01)));
  }
  const loom::kernels::AdamWStep s{1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0 - std::pow(0.9, 3), 1.0 - std::pow(0.95, 3)};

  loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
  const loom::Device dev = loom::cuda_device(0);
  const auto moved = [&](const std::vector<Tensor>& ts) {
    std::vector<Tensor> r;
    for (const Tensor& t : ts) r.push_back(t.clone().to(dev));
    return r;
  };
  std::vector<Tensor> p = moved(p_cpu), g = moved(g_cpu), m = moved(m_cpu), v = moved(v_cpu);
  // Every other tensor has a bf16 copy to rewrite (poisoned), the rest none.
  std::vector<Tensor> halves;
  for (size_t i = 0; i < sizes.size(); ++i)
    halves.push_back(i % 2 == 0 ? loom::full({sizes[i]}, 7.0, loom::TensorOptions(loom::DType::bf16).with_device(dev))
                                : Tensor());
  const loom::kernels::Backend& table = loom::kernels::backend(dev);
  REQUIRE(table.adamw_multi != nullptr);
  REQUIRE(table.adamw_multi(p, g, m, v, halves, s));
  for (size_t i = 0; i < sizes.size(); ++i)
    loom::kernels::backend(loom::kCPU).adamw(p_cpu[i], g_cpu[i], m_cpu[i], v_cpu[i], Tensor(), s);
  for (size_t i = 0; i < sizes.size(); i += 2) {
    INFO("tensor " << i << " (" << sizes[i] << " elements): the bf16 copy is the updated param's cast");
    CHECK(halves[i].to(loom::kCPU).to_vector<float>() == p[i].to(loom::kCPU).to(loom::DType::bf16).to_vector<float>());
  }

  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::vector<float> want_p = p_cpu[i].to_vector<float>(), got_p = p[i].to(loom::kCPU).to_vector<float>();
    const std::vector<float> want_v = v_cpu[i].to_vector<float>(), got_v = v[i].to(loom::kCPU).to_vector<float>();
    for (size_t j = 0; j < want_p.size(); ++j) {
      INFO("tensor " << i << " (" << sizes[i] << " elements), element " << j);
      REQUIRE(std::abs(got_p[j] - want_p[j]) <= 1e-6f * (1.0f + std::abs(want_p[j])));
      REQUIRE(std::abs(got_v[j] - want_v[j]) <= 1e-6f * (1e-6f + std::abs(want_v[j])));
    }
  }

  SECTION("the kernels decline what they do not take: f64, mismatched lists") {
    std::vector<Tensor> p64{loom::randn({4}, loom::TensorOptions(loom::DType::f64).with_device(dev), &gen)};
    CHECK_FALSE(table.adamw_multi(p64, p64, p64, p64, {}, s));
    std::vector<Tensor> shorter(g.begin(), g.end() - 1);
    CHECK_FALSE(table.adamw_multi(p, shorter, m, v, {}, s));
    std::vector<Tensor> fewer_halves(halves.begin(), halves.end() - 1);
    CHECK_FALSE(table.adamw_multi(p, g, m, v, fewer_halves, s));
  }
  SECTION("a half copy that is not bf16 of the param's size is an error naming it") {
    std::vector<Tensor> wrong(p.size());
    wrong[2] = loom::zeros({sizes[2] + 1}, loom::TensorOptions(loom::DType::bf16).with_device(dev));
    CHECK_THROWS_WITH(table.adamw_multi(p, g, m, v, wrong, s), Catch::Contains("half copy"));
  }
}

TEST_CASE("multi-tensor sum of squares on the emulator: the double sum over every element", "[multi_tensor]") {
  const std::vector<int64_t> sizes = awkward_sizes();
  loom::Generator gen(9);
  std::vector<Tensor> xs_cpu;
  long double want = 0;
  for (int64_t n : sizes) {
    xs_cpu.push_back(loom::randn({n}, {}, &gen));
    for (float x : xs_cpu.back().to_vector<float>()) want += static_cast<long double>(x) * x;
  }
  loom::cuda::HostEmulation emulation(1, loom::cuda::EmulatedKernels::cpu_and_tiles);
  std::vector<Tensor> xs;
  for (const Tensor& x : xs_cpu) xs.push_back(x.to(loom::cuda_device(0)));
  double got = -1;
  REQUIRE(loom::kernels::backend(loom::cuda_device(0)).sum_squares(xs, &got));
  CHECK(std::abs(got - static_cast<double>(want)) <= 1e-12 * static_cast<double>(want));

  // What the optimizers call: grad_norm over parameters with gradients.
  std::vector<Tensor> params;
  for (const Tensor& x : xs) {
    Tensor p = loom::zeros_like(x);
    p.set_grad(x);
    params.push_back(p);
  }
  CHECK(std::abs(loom::optim::grad_norm(params) - std::sqrt(static_cast<double>(want))) <=
        1e-12 * std::sqrt(static_cast<double>(want)));
}
