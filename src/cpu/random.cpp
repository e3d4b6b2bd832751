// Philox draws. Element i of a draw uses block (start + i / 4), lane i % 4, so
// every backend that implements Philox gets the same numbers, and a draw can
// be cut between threads anywhere. Normals use Box-Muller on the lane pairs
// (0,1) and (2,3) of a block.
#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/philox_batch.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

constexpr int64_t kChunkBlocks = 256;            // uniforms drawn per pass through a stack buffer
constexpr int64_t kGrainBlocks = 8 * kChunkBlocks;  // a thread's smallest share

// Calls write(first_element, u, count) for the uniforms of the n elements
// drawn from `block` on, a chunk at a time, the chunks spread over the pool.
template <class Write>
void draw_uniforms(int64_t n, uint64_t seed, uint64_t block, Write&& write) {
  const int64_t blocks = (n + 3) / 4;
  parallel_for(0, blocks, kGrainBlocks, [&](int64_t b0, int64_t b1) {
    alignas(32) float u[4 * kChunkBlocks];
    for (int64_t b = b0; b < b1; b += kChunkBlocks) {
      const int64_t count = std::min(kChunkBlocks, b1 - b);
      philox_uniforms(seed, block + static_cast<uint64_t>(b), count, u);
      write(4 * b, u, std::min(4 * count, n - 4 * b));
    }
  });
}

}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t block) {
  dispatch_float(out.dtype(), "rand", [&]<class T>() {
    T* op = ptr<T>(out);
    draw_uniforms(out.numel(), seed, block, [=](int64_t first, const float* __restrict u, int64_t count) {
      T* __restrict o = op + first;
      for (int64_t i = 0; i < count; ++i) o[i] = static_cast<T>(u[i]);
    });
  });
}

void normal(const Tensor& out, uint64_t seed, uint64_t block) {
  dispatch_float(out.dtype(), "randn", [&]<class T>() {
    T* op = ptr<T>(out);
    constexpr double kTwoPi = 6.28318530717958647692;
    // `first` is a multiple of 4, so the pairs (0,1) and (2,3) of a block stay together.
    draw_uniforms(out.numel(), seed, block, [&](int64_t first, const float* u, int64_t count) {
      for (int64_t i = 0; i < count; i += 2) {
        const double u1 = 1.0 - static_cast<double>(u[i]);  // in (0, 1]: log is finite
        const double u2 = u[i + 1];
        const double radius = std::sqrt(-2.0 * std::log(u1));
        op[first + i] = static_cast<T>(radius * std::cos(kTwoPi * u2));
        if (i + 1 < count) op[first + i + 1] = static_cast<T>(radius * std::sin(kTwoPi * u2));
      }
    });
  });
}

void dropout_mask(const Tensor& out, double p, double scale, uint64_t seed, uint64_t block) {
  LOOM_CHECK(out.is_contiguous(), "dropout: the mask must be contiguous");
  auto draw = [&]<class T>() {
    using C = compute_t<T>;
    T* op = ptr<T>(out);
    // As the composition where(rand(dtype) >= p, scale, 0): u and p rounded to T first.
    const C threshold = static_cast<C>(static_cast<T>(p));
    const T kept = static_cast<T>(scale), dropped = static_cast<T>(0.0);
    draw_uniforms(out.numel(), seed, block, [=](int64_t first, const float* __restrict u, int64_t count) {
      // By value and restrict: a select the compiler vectorises, not a
      // branch on a coin flip reloading its operands.
      T* __restrict o = op + first;
      for (int64_t i = 0; i < count; ++i) o[i] = static_cast<C>(static_cast<T>(u[i])) >= threshold ? kept : dropped;
    });
  };
  switch (out.dtype()) {
    case DType::f32: return draw.template operator()<float>();
    case DType::f64: return draw.template operator()<double>();
    case DType::bf16: return draw.template operator()<bf16>();
    case DType::f16: return draw.template operator()<f16>();
    default: LOOM_FAIL("dropout: expected a floating tensor, got ", dtype_name(out.dtype()));
  }
}

}  // namespace loom::cpu
