// A self-check of the warpgroup products of simt_wgmma.cuh: one warpgroup
// multiplies A [64 x 16] by B [16 x N] (N = 64, 128) in both forms (A and B
// K-major from shared memory, issued twice, the first ignoring the
// accumulator; A from registers with B N-major), with the operands placed in
// shared memory by plain loops over the PTX canonical layouts at offsets
// unlike the flash kernel's, and stores the accumulators by their documented
// layout. The host compares both products with a float64 matmul.
//
// The same kernel runs on the SIMT emulator
// (tests/cuda/simt_wgmma_emulated_test.cpp) and on a 9.0 device
// (benchmarks/flash_shapes.cu, which scripts/gpu-check.sh runs): on the
// device it names a descriptor, fragment or accumulator layout read otherwise
// than the code assumes apart from the attention results.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "simt_wgmma.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

namespace wgmma_probe {

inline constexpr int kM = 64, kK = 16, kThreads = 128;

// Where element (row, k) of a K-major operand, or (n, k) of an N-major one,
// sits: the canonical layouts without swizzle, 8 x 16-byte core matrices.
struct Placement {
  bool k_major;
  uint32_t leading, stride;  // LBO, SBO in bytes
  LOOM_SIMT_HOST_DEVICE size_t byte(int row, int k) const {
    return k_major ? size_t(row / 8) * stride + size_t(k / 8) * leading + (row % 8) * 16 + (k % 8) * 2
                   : size_t(row / 8) * stride + size_t(k / 8) * leading + (k % 8) * 16 + (row % 8) * 2;
  }
  // Bytes spanned by `rows` rows (or n) of 16 k.
  LOOM_SIMT_HOST_DEVICE size_t extent(int rows) const { return byte(rows - 1, kK - 1) + 2; }
};

template <int N>
struct Args {
  const uint16_t* a = nullptr;  // [64][16] bf16 bits
  const uint16_t* b = nullptr;  // [16][N] bf16 bits
  // Offsets unlike the flash kernel's: padded row groups, K neighbours apart.
  Placement pa{true, 128, 288}, pb_k{true, N * 16 + 32, 128}, pb_n{false, N / 8 * 144 + 64, 144};
  size_t a_at = 0, b_k_at = 0, b_n_at = 0, shared_bytes = 0;  // each operand's offset in shared memory
  float* twice_ab = nullptr;                                  // [64][N]: A·B issued twice
  float* registers_ab = nullptr;                              // [64][N]: A from registers, B N-major

  Args() {
    const auto round = [](size_t x) { return (x + 127) / 128 * 128; };
    b_k_at = round(pa.extent(kM));
    b_n_at = b_k_at + round(pb_k.extent(N));
    shared_bytes = b_n_at + round(pb_n.extent(N));
  }
};

template <int N>
LOOM_SIMT_DEVICE void store(float* out, const float (&d)[N / 8][4]) {
  const int warp = static_cast<int>(thread_x() / 32), lane = static_cast<int>(thread_x() % 32);
  const int g = lane / 4, t = lane % 4;
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) out[(16 * warp + g + 8 * (e / 2)) * N + 8 * j + 2 * t + e % 2] = d[j][e];
}

// One block of kThreads threads, Args::shared_bytes of shared memory.
template <int N>
LOOM_SIMT_GLOBAL void kernel(Args<N> p) {
#if defined(__CUDACC__) && !defined(LOOM_SIMT_WGMMA)
  (void)p;
  __trap();  // built for a target without wgmma
#else
  unsigned char* shared = dynamic_shared<unsigned char>();
  const int thread = static_cast<int>(thread_x());
  const auto put = [&](size_t at, uint16_t bits) { *reinterpret_cast<uint16_t*>(shared + at) = bits; };
  for (int i = thread; i < kM * kK; i += kThreads) put(p.a_at + p.pa.byte(i / kK, i % kK), p.a[i]);
  for (int i = thread; i < kK * N; i += kThreads) {
    put(p.b_k_at + p.pb_k.byte(i % N, i / N), p.b[i]);
    put(p.b_n_at + p.pb_n.byte(i % N, i / N), p.b[i]);
  }
  fence_async_shared();
  sync_block();

  const uint64_t a = wgmma_descriptor(shared + p.a_at, p.pa.leading, p.pa.stride);
  const uint64_t b_k = wgmma_descriptor(shared + p.b_k_at, p.pb_k.leading, p.pb_k.stride);
  const uint64_t b_n = wgmma_descriptor(shared + p.b_n_at, p.pb_n.leading, p.pb_n.stride);
  float d[N / 8][4];
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) d[j][e] = NAN;  // must be ignored by the first product
  wgmma_pin(d);
  wgmma_fence();
  wgmma_ss<N>(d, a, b_k, false);
  wgmma_ss<N>(d, a, b_k, true);
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_pin(d);
  store<N>(p.twice_ab, d);

  // A's fragment in mma.sync's layout on this warp's 16 rows, from global memory.
  const int warp = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
  const auto pair = [&](int row, int k) {
    const uint16_t* r = p.a + (16 * warp + row) * kK + k;
    return static_cast<uint32_t>(r[0]) | static_cast<uint32_t>(r[1]) << 16;
  };
  uint32_t fragment[4] = {pair(g, 2 * t), pair(g + 8, 2 * t), pair(g, 2 * t + 8), pair(g + 8, 2 * t + 8)};
  float e[N / 8][4] = {};
  wgmma_pin(e);
  wgmma_pin(fragment);
  wgmma_fence();
  wgmma_rs_nmajor<N>(e, fragment, b_n, true);
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_pin(e);
  store<N>(p.registers_ab, e);
#endif
}

template <int N>
auto launch(const Args<N>& p, Stream stream) {
  return simt::launch(Dim3(1), Dim3(kThreads), p.shared_bytes, stream, kernel<N>, p);
}

// The largest error of both products against float64, relative to 1 + |want|
// (the bf16 inputs are exact in f32; only the f32 sums round).
template <int N>
double worst_error(const Args<N>& p, const float* twice, const float* registers) {
  const auto value = [](uint16_t bits) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return static_cast<double>(f);
  };
  double worst = 0;
  for (int i = 0; i < kM; ++i)
    for (int j = 0; j < N; ++j) {
      double want = 0;
      for (int k = 0; k < kK; ++k) want += value(p.a[i * kK + k]) * value(p.b[k * N + j]);
      for (const double got : {twice[i * N + j] / 2.0, static_cast<double>(registers[i * N + j])}) {
        const double err = std::abs(got - want) / (1 + std::abs(want));
        worst = err == err ? (err > worst ? err : worst) : INFINITY;  // NaN: the worst
      }
    }
  return worst;
}

}  // namespace wgmma_probe

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
