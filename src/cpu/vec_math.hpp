// Branch-free float exp, tanh and erf that GCC and Clang vectorise when called
// in a unit-stride loop (-O3 with -march=native: 16 lanes on AVX-512, 8 on
// AVX2, where GCC needs -fno-trapping-math to turn the selects into blends;
// the build sets it), unlike
// libm's scalar expf/tanhf/erff, which bound softmax, gelu and cross-entropy
// far below memory bandwidth. Each one computes every branch and selects, so
// a loop over them has no control flow. Accuracy against the correctly
// rounded result (tests/unit/vec_math_test.cpp sweeps it): a few float ulps,
// i.e. ~1e-7 relative (erf: ~1e-7 absolute near 0 where it is relative too).
// Special values follow libm: exp(-inf) = 0, exp(x > 88.72) = inf, results in
// the denormal range are produced (not flushed), tanh(+-inf) = +-1, NaN in
// gives NaN out. The polynomial coefficients are least-squares fits of the
// relative error on Chebyshev nodes (degrees chosen for ~1e-9 fit error, so
// float rounding dominates).
//
// `math<T>` picks these for float and libm for double, so a kernel written
// once serves both: f64 stays exact (gradcheck runs in f64).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace loom::cpu::vec {

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule (the loop unrolls at -O3).
template <size_t N>
inline float horner(float x, const float (&c)[N]) {
  float p = c[0];
  for (size_t i = 1; i < N; ++i) p = p * x + c[i];
  return p;
}

// e^x = p(r) * 2^h * 2^h with x = 2h ln2 + r, |r| <= ln2, p the degree-9
// Taylor polynomial (truncation 7e-9 relative). Squaring 2^h instead of
// forming 2^(2h) keeps the scale a normal float over the whole range
// [-104, 89] of x that does not round to 0 or inf, so denormal and
// overflowing results come out of the last multiply, at one integer shift.
inline float exp(float x) {
  x = x < -104.0f ? -104.0f : x;  // exp(-104) < the smallest denormal: rounds to 0 (also -inf)
  x = x > 89.0f ? 89.0f : x;      // exp(89) > FLT_MAX: overflows to inf; NaN passes both
  // round(x / (2 ln2)) + 127 in the low mantissa bits (1.5 * 2^23 + 127).
  const float t = x * 0.72134752044448170f + 12583039.0f;
  const float h = t - 12583039.0f;
  const float r = (x - h * 1.38629150390625f) - h * 2.8572136405724535e-06f;  // 2 ln2 split hi + lo
  static constexpr float kTaylor[] = {
      1.0f / 362880.0f, 1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
      1.0f / 6.0f, 0.5f, 1.0f, 1.0f};
  const float p = horner(r, kTaylor);
  int32_t bits;
  std::memcpy(&bits, &t, 4);
  bits <<= 23;  // 2^h as float bits: the biased exponent h + 127 moved into place
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale * scale;
}

// tanh: x * P(x^2) for |x| < 1, else sign(x) * (1 - 2 / (e^{2|x|} + 1)),
// which is exact to rounding there (no cancellation: the result is >= 0.76).
inline float tanh(float x) {
  const float a = std::fabs(x);
  const float x2 = x * x;
  static constexpr float kTanh[] = {
      -0.0003533636868589925f, 0.002282298018326117f, -0.007917547831154654f, 0.021464899618195813f,
      -0.05387094543953074f, 0.13332160364389586f, -0.33333278737887057f, 0.9999999957950214f};
  const float p = horner(x2, kTanh);
  const float small = x * p;
  const float e = vec::exp(2.0f * (a > 9.5f ? 9.5f : a));  // tanh(9.5) rounds to 1
  const float big = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  return a < 1.0f ? small : big;
}

// erf: x * P(x^2) for |x| < 1, else sign(x) * (1 - e^{-x^2} * R(1/|x|)) with
// R fitting erfc(x) e^{x^2} on [1, 4]; erf(4) rounds to 1 in float. The
// Gaussian factor e^{-x^2} is computed for every x and handed back in
// `gauss` (the normal density needs it too: gelu's derivative).
inline float erf_gauss(float x, float& gauss) {
  const float a = std::fabs(x);
  const float x2 = x * x;
  static constexpr float kErfSmall[] = {
      7.854026331181966e-05f, -0.0008010247660521072f, 0.005188334502386193f, -0.026853816070375253f,
      0.1128358527082284f, -0.37612625839751246f, 1.1283791657323463f};
  const float p = horner(x2, kErfSmall);
  const float small = x * p;
  gauss = vec::exp(-x2);
  const float ac = a < 1.0f ? 1.0f : (a > 4.0f ? 4.0f : a);  // NaN stays NaN
  const float u = 1.0f / ac;
  static constexpr float kErfcScaled[] = {
      -0.011374784606211651f, 0.037999776417099576f, 0.004027100488022106f, -0.2190696297098166f,
      0.4809397040169718f, -0.4646672392153535f, 0.040159725093203466f, 0.5593158010950176f,
      0.0002530946297080216f};
  const float q = horner(u, kErfcScaled);
  const float big = std::copysign(1.0f - gauss * q, x);
  return a < 1.0f ? small : big;
}

inline float erf(float x) {
  float gauss;
  return vec::erf_gauss(x, gauss);
}

}  // namespace loom::cpu::vec

namespace loom::cpu {

// Elementary functions for a kernel's compute type: vectorisable for float,
// libm for double (and anything else).
// erf_gauss(x, gauss) is erf(x) that also sets gauss = e^{-x^2}.
template <class T>
struct math {
  static T exp(T x) { return std::exp(x); }
  static T tanh(T x) { return std::tanh(x); }
  static T erf(T x) { return std::erf(x); }
  static T erf_gauss(T x, T& gauss) {
    gauss = std::exp(-x * x);
    return std::erf(x);
  }
};
template <>
struct math<float> {
  static float exp(float x) { return vec::exp(x); }
  static float tanh(float x) { return vec::tanh(x); }
  static float erf(float x) { return vec::erf(x); }
  static float erf_gauss(float x, float& gauss) { return vec::erf_gauss(x, gauss); }
};

}  // namespace loom::cpu
