// The warpgroup products of cuda/simt_wgmma.cuh on the SIMT emulator, by the
// self-check of cuda/wgmma_probe.cuh (which a 9.0 device runs too): one
// warpgroup multiplies A [64 x 16] by B [16 x N] (N = 64, 128) in both forms,
// the operands placed by plain loops over the PTX canonical layouts at
// offsets unlike the flash kernel's; the products must equal a float64
// matmul. A descriptor field decoded from the wrong bits, a fragment register
// read from the wrong lane or an accumulator element stored to the wrong row
// or column breaks the equality (placing the N-major operand's K groups over
// its N groups failed 1,023 of its checks).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "wgmma_probe.cuh"

namespace {

using loom::bf16;
namespace simt = loom::simt;
namespace probe = loom::simt::wgmma_probe;

template <int N>
double probe_error() {
  std::mt19937 rng(7 + N);
  std::normal_distribution<float> normal;
  std::vector<uint16_t> a(probe::kM * probe::kK), b(probe::kK * N);
  for (auto* m : {&a, &b})
    for (uint16_t& x : *m) x = bf16(normal(rng)).bits;
  std::vector<float> twice(probe::kM * N, NAN), registers(probe::kM * N, NAN);
  probe::Args<N> p;
  p.a = a.data();
  p.b = b.data();
  p.twice_ab = twice.data();
  p.registers_ab = registers.data();
  probe::launch<N>(p, {});
  return probe::worst_error<N>(p, twice.data(), registers.data());
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
  CHECK(probe_error<64>() <= 1e-4);
  CHECK(probe_error<128>() <= 1e-4);
}

TEST_CASE("wgmma: an operand past the end of shared memory faults", "[.wgmma_fault]") {
  simt::launch(simt::Dim3(1), simt::Dim3(128), 1024, {}, overrun_kernel, 0);
}
