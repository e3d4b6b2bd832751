// The warp-level matrix primitives of cuda/simt_mma.cuh on the SIMT emulator:
// one warp multiplies bf16 tiles loaded by ldmatrix (plain and transposed)
// through mma m16n8k16 and stores the accumulators by their documented
// layout; the products must equal a float64 matmul of the same values. A
// register placed in the wrong row, column or half breaks the equality.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "simt_mma.cuh"

namespace {

using loom::bf16;
namespace simt = loom::simt;

constexpr int kN = 16, kLd = kN + 8;  // 16 x 16 tiles, rows padded by 16 bytes

struct Tiles {
  const bf16* a;  // [16 m][16 k]
  const bf16* b;  // [16 n][16 k]: the product is a bᵀ
  const bf16* v;  // [16 k][16 n]: the product is a v
  float* a_bt;    // [16][16]
  float* a_v;     // [16][16]
};

// One warp: A by ldmatrix, bᵀ's fragments by ldmatrix, v's by ldmatrix.trans.
inline void product_kernel(Tiles t) {
  bf16* sa = simt::dynamic_shared<bf16>();
  bf16* sb = sa + kN * kLd;
  bf16* sv = sb + kN * kLd;
  const int lane = static_cast<int>(simt::thread_x());
  for (int i = lane; i < kN * kN; i += 32) {
    sa[i / kN * kLd + i % kN] = t.a[i];
    sb[i / kN * kLd + i % kN] = t.b[i];
    sv[i / kN * kLd + i % kN] = t.v[i];
  }
  simt::sync_warp();
  uint32_t af[4], bf[4], vf[4];
  simt::ldmatrix_x4(af, sa + ((lane / 8) % 2 * 8 + lane % 8) * kLd + lane / 16 * 8);
  simt::ldmatrix_x4(bf, sb + (lane / 16 * 8 + lane % 8) * kLd + (lane / 8) % 2 * 8);
  simt::ldmatrix_x4_trans(vf, sv + ((lane / 8) % 2 * 8 + lane % 8) * kLd + lane / 16 * 8);
  float c[2][4] = {}, d[2][4] = {};
  for (int n = 0; n < 2; ++n) {
    simt::mma_bf16_16816(c[n], af, bf[2 * n], bf[2 * n + 1]);
    simt::mma_bf16_16816(d[n], af, vf[2 * n], vf[2 * n + 1]);
  }
  const int g = lane / 4, q = lane % 4;
  for (int n = 0; n < 2; ++n)
    for (int e = 0; e < 4; ++e) {
      const int at = (g + 8 * (e / 2)) * kN + n * 8 + 2 * q + e % 2;
      t.a_bt[at] = c[n][e];
      t.a_v[at] = d[n][e];
    }
}

}  // namespace

TEST_CASE("ldmatrix and mma m16n8k16 fragments multiply like a matmul", "[simt][mma]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<bf16> a(kN * kN), b(kN * kN), v(kN * kN);
  for (auto* m : {&a, &b, &v})
    for (bf16& x : *m) x = bf16(normal(rng));
  std::vector<float> a_bt(kN * kN, NAN), a_v(kN * kN, NAN);
  simt::launch(simt::Dim3(1), simt::Dim3(32), 3 * kN * kLd * sizeof(bf16), {}, product_kernel,
               Tiles{a.data(), b.data(), v.data(), a_bt.data(), a_v.data()});
  for (int i = 0; i < kN; ++i)
    for (int j = 0; j < kN; ++j) {
      double want_bt = 0, want_v = 0;
      for (int k = 0; k < kN; ++k) {
        want_bt += double(float(a[i * kN + k])) * double(float(b[j * kN + k]));
        want_v += double(float(a[i * kN + k])) * double(float(v[k * kN + j]));
      }
      INFO("row " << i << ", column " << j);
      CHECK(std::abs(a_bt[i * kN + j] - want_bt) <= 1e-4 * (1 + std::abs(want_bt)));
      CHECK(std::abs(a_v[i * kN + j] - want_v) <= 1e-4 * (1 + std::abs(want_v)));
    }
}

TEST_CASE("pack_bf16x2 puts the first value in the low half", "[simt][mma]") {
  const uint32_t packed = simt::pack_bf16x2(1.0f, -2.0f);
  CHECK((packed & 0xffffu) == bf16(1.0f).bits);
  CHECK((packed >> 16) == bf16(-2.0f).bits);
}
