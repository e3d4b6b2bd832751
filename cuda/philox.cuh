// Philox-4x32-10 draws, the same stream as the CPU (src/core/random.cpp):
// element i of a draw uses block (start + i / 4), lane i % 4; normals use
// Box-Muller (in double, as on the CPU) on the lane pairs (0,1) and (2,3).
// Dropout's scaled keep-mask is drawn the same way and compared with p in
// the output's dtype, as where(rand(dtype) >= p, scale, 0) would.
// Floor: 10 Philox rounds per 4 elements (~60 integer ops), writes numel *
// itemsize bytes; compute-bound on integer multiplies for f32 output.
// One thread per 4 elements, grid-stride. Written on simt.cuh, so the
// emulator runs it (tests/cuda/philox_emulated_test.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"
#include "elements.cuh"
#include "simt.cuh"

namespace loom::philox_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr unsigned kThreads = 256;

LOOM_SIMT_DEVICE void uniform4(uint64_t seed, uint64_t block, float (&u)[4]) {
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
  for (int i = 0; i < 4; ++i) u[i] = static_cast<float>(r[i] >> 8) * (1.0f / 16777216.0f);
}

template <class T>
struct Draw {
  T* out;
  int64_t n;
  uint64_t seed, block;
};

template <class T>
LOOM_SIMT_GLOBAL void uniform_kernel(Draw<T> a) {
  LOOM_SIMT_GRID_LOOP(q, (a.n + 3) / 4) {  // q: a group of 4 elements, one Philox block
    float u[4];
    uniform4(a.seed, a.block + static_cast<uint64_t>(q), u);
    for (int l = 0; l < 4; ++l)
      if (4 * q + l < a.n) a.out[4 * q + l] = static_cast<T>(u[l]);
  }
}

template <class T>
LOOM_SIMT_GLOBAL void normal_kernel(Draw<T> a) {
  constexpr double kTwoPi = 6.28318530717958647692;
  LOOM_SIMT_GRID_LOOP(q, (a.n + 3) / 4) {  // q: a group of 4 elements, one Philox block
    float u[4];
    uniform4(a.seed, a.block + static_cast<uint64_t>(q), u);
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = 1.0 - static_cast<double>(u[2 * pair]);  // in (0, 1]: log is finite
      const double u2 = u[2 * pair + 1];
      const double radius = ::sqrt(-2.0 * ::log(u1));
      const int64_t e = 4 * q + 2 * pair;
      if (e < a.n) a.out[e] = static_cast<T>(radius * ::cos(kTwoPi * u2));
      if (e + 1 < a.n) a.out[e + 1] = static_cast<T>(radius * ::sin(kTwoPi * u2));
    }
  }
}

template <class T>
struct Mask {
  T* out;
  int64_t n;
  uint64_t seed, block;
  strided::compute_t<T> threshold;  // p, rounded to T
  T kept, dropped;                  // scale and 0 as T
};

template <class T>
LOOM_SIMT_GLOBAL void dropout_mask_kernel(Mask<T> a) {
  LOOM_SIMT_GRID_LOOP(q, (a.n + 3) / 4) {  // q: a group of 4 elements, one Philox block
    float u[4];
    uniform4(a.seed, a.block + static_cast<uint64_t>(q), u);
    for (int l = 0; l < 4; ++l) {
      if (4 * q + l >= a.n) break;
      const auto drawn = strided::to_compute(strided::from_compute<T>(static_cast<strided::compute_t<T>>(u[l])));
      a.out[4 * q + l] = drawn >= a.threshold ? a.kept : a.dropped;
    }
  }
}

// The grid of a draw of n elements: one thread per 4, at most 65536 blocks.
inline unsigned draw_blocks(int64_t n) {
  const int64_t groups = (n + 3) / 4, wanted = (groups + kThreads - 1) / kThreads;
  return static_cast<unsigned>(wanted < 65536 ? wanted : 65536);
}

// The Backend::dropout_mask entry after its device checks.
template <class Check>
void run_dropout_mask(const Tensor& out, double p, double scale, uint64_t seed, uint64_t block, Stream stream,
                      Check&& check) {
  LOOM_CHECK(out.is_contiguous(), "dropout: the mask must be contiguous");
  const int64_t n = out.numel();
  if (n == 0) return;
  const unsigned blocks = draw_blocks(n);
  // T is the device's storage type, Host loom's own type of the dtype: the
  // constants are rounded here, on the host, by loom::bf16 / loom::f16 (bit
  // for bit the device conversions, elements.cuh).
  auto go = [&]<class T, class Host>() {
    using C = strided::compute_t<T>;
    auto stored = [](double x) {
      if constexpr (std::is_same_v<T, Host>) return static_cast<T>(x);
      else return T{Host(static_cast<float>(x)).bits};
    };
    const C threshold = static_cast<C>(Host(static_cast<C>(p)));  // p as T, compared in T's compute type
    const Mask<T> a{static_cast<T*>(out.raw_data()), n, seed, block, threshold, stored(scale), stored(0.0)};
    check(launch(Dim3(blocks), Dim3(kThreads), 0, stream, dropout_mask_kernel<T>, a), "dropout");
  };
  switch (out.dtype()) {
    case DType::f32: return go.template operator()<float, float>();
    case DType::f64: return go.template operator()<double, double>();
    case DType::bf16: return go.template operator()<strided::Bf16, loom::bf16>();
    case DType::f16: return go.template operator()<strided::Half, loom::f16>();
    default: LOOM_FAIL("dropout: expected a floating tensor, got ", dtype_name(out.dtype()));
  }
}

// The Backend::uniform / normal entries after their device checks.
template <class Check>
void run(const Tensor& out, uint64_t seed, uint64_t block, bool normal, Stream stream, Check&& check) {
  const char* op = normal ? "randn" : "rand";
  LOOM_CHECK(out.is_contiguous(), op, ": output must be contiguous");
  LOOM_CHECK(out.dtype() == DType::f32 || out.dtype() == DType::f64, op, ": expected a f32 or f64 tensor, got ",
             dtype_name(out.dtype()));
  const int64_t n = out.numel();
  if (n == 0) return;
  const unsigned blocks = draw_blocks(n);
  auto go = [&](auto* typed) {
    using T = std::remove_pointer_t<decltype(typed)>;
    const Draw<T> a{typed, n, seed, block};
    check(launch(Dim3(blocks), Dim3(kThreads), 0, stream, normal ? normal_kernel<T> : uniform_kernel<T>, a), op);
  };
  if (out.dtype() == DType::f32)
    go(static_cast<float*>(out.raw_data()));
  else
    go(static_cast<double*>(out.raw_data()));
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::philox_kernels
