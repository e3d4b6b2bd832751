// Philox-4x32-10 draws, the same stream as the CPU (src/core/random.cpp):
// element i of a draw uses block (start + i / 4), lane i % 4; normals use
// Box-Muller (in double, as on the CPU) on the lane pairs (0,1) and (2,3).
// Floor: 10 Philox rounds per 4 elements (~60 integer ops), writes numel *
// itemsize bytes; compute-bound on integer multiplies for f32 output.
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

__device__ __forceinline__ void philox_uniform4(uint64_t seed, uint64_t block, float (&u)[4]) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  const uint32_t r[4] = {c0, c1, c2, c3};
#pragma unroll
  for (int i = 0; i < 4; ++i) u[i] = static_cast<float>(r[i] >> 8) * (1.0f / 16777216.0f);
}

template <class T>
__global__ void uniform_kernel(int64_t n, T* out, uint64_t seed, uint64_t block) {
  LOOM_GRID_LOOP(q, (n + 3) / 4) {
    float u[4];
    philox_uniform4(seed, block + static_cast<uint64_t>(q), u);
#pragma unroll
    for (int l = 0; l < 4; ++l)
      if (4 * q + l < n) out[4 * q + l] = static_cast<T>(u[l]);
  }
}

template <class T>
__global__ void normal_kernel(int64_t n, T* out, uint64_t seed, uint64_t block) {
  constexpr double kTwoPi = 6.28318530717958647692;
  LOOM_GRID_LOOP(q, (n + 3) / 4) {
    float u[4];
    philox_uniform4(seed, block + static_cast<uint64_t>(q), u);
#pragma unroll
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = 1.0 - static_cast<double>(u[2 * pair]);  // in (0, 1]: log is finite
      const double u2 = u[2 * pair + 1];
      const double radius = sqrt(-2.0 * log(u1));
      const int64_t e = 4 * q + 2 * pair;
      if (e < n) out[e] = static_cast<T>(radius * cos(kTwoPi * u2));
      if (e + 1 < n) out[e + 1] = static_cast<T>(radius * sin(kTwoPi * u2));
    }
  }
}

template <class T>
void launch(const Tensor& out, uint64_t seed, uint64_t block, bool normal, cudaStream_t s) {
  const int64_t n = out.numel();
  T* p = static_cast<T*>(out.raw_data());
  if (normal) normal_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, s>>>(n, p, seed, block);
  else uniform_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, s>>>(n, p, seed, block);
  LOOM_CUDA_CHECK_LAUNCH("philox kernel", n, " elements");
}

void draw(const Tensor& out, uint64_t seed, uint64_t block, bool normal) {
  const char* op = normal ? "randn" : "rand";
  OnDevice on(out, op);
  LOOM_CHECK(out.is_contiguous(), op, ": output must be contiguous");
  if (out.numel() == 0) return;
  switch (out.dtype()) {
    case DType::f32: return launch<float>(out, seed, block, normal, on.stream);
    case DType::f64: return launch<double>(out, seed, block, normal, on.stream);
    default: LOOM_FAIL(op, ": expected a f32 or f64 tensor, got ", dtype_name(out.dtype()));
  }
}

}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t block) { draw(out, seed, block, false); }
void normal(const Tensor& out, uint64_t seed, uint64_t block) { draw(out, seed, block, true); }

}  // namespace loom::cuda
