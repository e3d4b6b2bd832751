// The warpgroup products of cuda/simt_wgmma.cuh on the SIMT emulator: one
// warpgroup multiplies A [64 x 16] by B [16 x N] (N = 64, 128) in both forms
// (A and B K-major from shared memory; A from registers with B N-major), the
// operands placed by plain loops over the PTX canonical layouts with offsets
// chosen unlike the flash kernel's, and stores its accumulators by their
// documented layout; the products must equal a float64 matmul. A descriptor
// field decoded from the wrong bits, a fragment register read from the wrong
// lane or an accumulator element stored to the wrong row or column breaks the
// equality. On a device, cuda.kernels and cuda.ops with the variant
// flash_forward_wgmma on are what check the instructions themselves.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "simt_wgmma.cuh"

namespace {

using loom::bf16;
namespace simt = loom::simt;

constexpr int kM = 64, kK = 16;

// Where element (row, k) of a K-major operand, or (n, k) of an N-major one,
// sits: the canonical layouts without swizzle, 8 x 16-byte core matrices.
struct Placement {
  bool k_major;
  uint32_t leading, stride;  // LBO, SBO in bytes
  size_t byte(int row, int k) const {
    return k_major ? size_t(row / 8) * stride + size_t(k / 8) * leading + (row % 8) * 16 + (k % 8) * 2
                   : size_t(row / 8) * stride + size_t(k / 8) * leading + (k % 8) * 16 + (row % 8) * 2;
  }
};

template <int N>
struct Probe {
  const bf16* a;  // [64][16]
  const bf16* b;  // [16][N]
  Placement pa, pb_k, pb_n;
  size_t a_at, b_k_at, b_n_at;  // each operand's offset in shared memory
  float* twice_ab;              // [64][N]: A·B issued twice, the first ignoring the accumulator
  float* registers_ab;          // [64][N]: A from registers, B N-major
};

template <int N>
void store(float* out, const float (&d)[N / 8][4]) {
  const int warp = static_cast<int>(simt::thread_x() / 32), lane = static_cast<int>(simt::thread_x() % 32);
  const int g = lane / 4, t = lane % 4;
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) out[(16 * warp + g + 8 * (e / 2)) * N + 8 * j + 2 * t + e % 2] = d[j][e];
}

template <int N>
void probe_kernel(Probe<N> p) {
  unsigned char* shared = simt::dynamic_shared<unsigned char>();
  const int thread = static_cast<int>(simt::thread_x());
  for (int i = thread; i < kM * kK; i += 128)
    std::memcpy(shared + p.a_at + p.pa.byte(i / kK, i % kK), &p.a[i], 2);
  for (int i = thread; i < kK * N; i += 128) {
    const int k = i / N, n = i % N;
    std::memcpy(shared + p.b_k_at + p.pb_k.byte(n, k), &p.b[i], 2);
    std::memcpy(shared + p.b_n_at + p.pb_n.byte(n, k), &p.b[i], 2);
  }
  simt::fence_async_shared();
  simt::sync_block();

  const uint64_t a = simt::wgmma_descriptor(shared + p.a_at, p.pa.leading, p.pa.stride);
  const uint64_t b_k = simt::wgmma_descriptor(shared + p.b_k_at, p.pb_k.leading, p.pb_k.stride);
  const uint64_t b_n = simt::wgmma_descriptor(shared + p.b_n_at, p.pb_n.leading, p.pb_n.stride);
  float d[N / 8][4];
  for (auto& tile : d)
    for (float& x : tile) x = NAN;  // must be ignored by the first product
  simt::wgmma_fence();
  simt::wgmma_ss<N>(d, a, b_k, false);
  simt::wgmma_ss<N>(d, a, b_k, true);
  simt::wgmma_commit();
  simt::wgmma_wait<0>();
  store<N>(p.twice_ab, d);

  // A's fragment in mma.sync's layout on this warp's 16 rows, from global memory.
  const int warp = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
  const auto pair = [&](int row, int k) {
    uint16_t lo, hi;
    std::memcpy(&lo, &p.a[(16 * warp + row) * kK + k], 2);
    std::memcpy(&hi, &p.a[(16 * warp + row) * kK + k + 1], 2);
    return static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
  };
  const uint32_t fragment[4] = {pair(g, 2 * t), pair(g + 8, 2 * t), pair(g, 2 * t + 8), pair(g + 8, 2 * t + 8)};
  float e[N / 8][4] = {};
  simt::wgmma_fence();
  simt::wgmma_rs_nmajor<N>(e, fragment, b_n, true);
  simt::wgmma_commit();
  simt::wgmma_wait<0>();
  store<N>(p.registers_ab, e);
}

template <int N>
void check_probe() {
  std::mt19937 rng(7 + N);
  std::normal_distribution<float> normal;
  std::vector<bf16> a(kM * kK), b(kK * N);
  for (bf16& x : a) x = bf16(normal(rng));
  for (bf16& x : b) x = bf16(normal(rng));
  // Offsets unlike the flash kernel's: padded row groups, K neighbours apart.
  Probe<N> p{a.data(), b.data(), {true, 128, 288}, {true, N * 16 + 32, 128}, {false, N / 8 * 144 + 64, 144}, 0, 0, 0,
             nullptr, nullptr};
  const auto extent = [](const Placement& pl, int rows) { return pl.byte(rows - 1, kK - 1) + 2; };
  const auto round = [](size_t x) { return (x + 127) / 128 * 128; };
  p.b_k_at = round(extent(p.pa, kM));
  p.b_n_at = p.b_k_at + round(extent(p.pb_k, N));
  const size_t shared_bytes = p.b_n_at + round(extent(p.pb_n, N));
  std::vector<float> twice(kM * N, NAN), registers(kM * N, NAN);
  p.twice_ab = twice.data();
  p.registers_ab = registers.data();
  simt::launch(simt::Dim3(1), simt::Dim3(128), shared_bytes, {}, probe_kernel<N>, p);
  for (int i = 0; i < kM; ++i)
    for (int j = 0; j < N; ++j) {
      double want = 0;
      for (int k = 0; k < kK; ++k) want += double(float(a[i * kK + k])) * double(float(b[k * N + j]));
      INFO("N " << N << ", row " << i << ", column " << j);
      CHECK(std::abs(twice[i * N + j] - 2 * want) <= 2e-4 * (1 + std::abs(want)));
      CHECK(std::abs(registers[i * N + j] - want) <= 1e-4 * (1 + std::abs(want)));
    }
}

// A descriptor whose matrix runs past the end of shared memory.
void overrun_kernel(int) {
  unsigned char* shared = simt::dynamic_shared<unsigned char>();
  const uint64_t a = simt::wgmma_descriptor(shared, 128, 256);
  float d[8][4] = {};
  simt::wgmma_ss<64>(d, a, a, false);
}

}  // namespace

TEST_CASE("wgmma m64nNk16 from shared memory and from registers multiplies like a matmul", "[simt][wgmma]") {
  check_probe<64>();
  check_probe<128>();
}

TEST_CASE("wgmma: an operand past the end of shared memory faults", "[.wgmma_fault]") {
  simt::launch(simt::Dim3(1), simt::Dim3(128), 1024, {}, overrun_kernel, 0);
}
