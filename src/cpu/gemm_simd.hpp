// The vector operations the packed f32 GEMM is written in, for the two
// instruction sets it is built for: AVX-512 (16 lanes, 32 registers, lane
// masks in mask registers) and AVX2 + FMA (8 lanes, 16 registers, lane masks
// in vector registers). Everything the GEMM does per ISA is here; the kernel,
// packing and blocking are written once on top.
// LOOM_GEMM_F32_PACKED is defined when the build targets one of them; other
// builds multiply f32 through Eigen.
#pragma once

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define LOOM_GEMM_F32_PACKED 1

// GCC 12 warns inside its own AVX-512 shuffle intrinsics (their undefined pass-through operand).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>

namespace loom::cpu::gemm_f32::simd {

#if defined(__AVX512F__)

constexpr const char* kIsa = "avx512";
constexpr int kLanes = 16;
using Vec = __m512;
using Mask = __mmask16;

inline Mask first_lanes(int64_t count) {
  return count >= kLanes ? static_cast<Mask>(0xFFFF) : static_cast<Mask>((1u << std::max<int64_t>(count, 0)) - 1u);
}
inline bool all_lanes(Mask m) { return m == static_cast<Mask>(0xFFFF); }
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
// Lanes outside the mask read as zero and are not touched in memory (no fault past an edge).
inline Vec load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void store(float* p, Mask m, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }

// In place: afterwards v[j] holds element j of every input vector v[0..15].
inline void transpose(Vec v[kLanes]) {
  Vec t[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // per lane: groups of four rows, one element each
    v[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    v[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    v[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    v[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Now lane L of v[4g + j] holds element 4L + j of rows 4g..4g+3: gather the lanes.
  for (int j = 0; j < 4; ++j) {
    const Vec lo01 = _mm512_shuffle_f32x4(v[j], v[4 + j], 0x44);
    const Vec hi01 = _mm512_shuffle_f32x4(v[j], v[4 + j], 0xEE);
    const Vec lo23 = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0x44);
    const Vec hi23 = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0xEE);
    t[j] = _mm512_shuffle_f32x4(lo01, lo23, 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(lo01, lo23, 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(hi01, hi23, 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(hi01, hi23, 0xDD);
  }
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

#else  // AVX2 + FMA

constexpr const char* kIsa = "avx2";
constexpr int kLanes = 8;
using Vec = __m256;
using Mask = __m256i;  // all ones in a lane that is in, zero in one that is not

inline Mask first_lanes(int64_t count) {
  const int in = static_cast<int>(std::clamp<int64_t>(count, 0, kLanes));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(in), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline bool all_lanes(Mask m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF; }
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec broadcast(float x) { return _mm256_set1_ps(x); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
// Lanes outside the mask read as zero and are not touched in memory (no fault past an edge).
inline Vec load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void store(float* p, Mask m, Vec v) { _mm256_maskstore_ps(p, m, v); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }

// In place: afterwards v[j] holds element j of every input vector v[0..7].
inline void transpose(Vec v[kLanes]) {
  Vec t[8];
  for (int i = 0; i < 4; ++i) {  // per 128-bit half: pairs of rows interleaved
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // per half: groups of four rows, one element each
    v[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    v[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    v[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    v[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Half H of v[4g + j] holds element 4H + j of rows 4g..4g+3: join the halves.
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_permute2f128_ps(v[j], v[4 + j], 0x20);
    t[4 + j] = _mm256_permute2f128_ps(v[j], v[4 + j], 0x31);
  }
  for (int i = 0; i < 8; ++i) v[i] = t[i];
}

#endif

// Built on the above, for both ISAs.

// The lanes of the last vector of `count` (>= 1) values, split into vectors.
inline Mask tail_lanes(int64_t count) { return first_lanes((count - 1) % kLanes + 1); }

// A product's sums x written to out, or added to what is there when accumulate.
inline void put(float* out, Vec x, bool accumulate) { store(out, accumulate ? add(x, load(out)) : x); }
// The same through mask m: lanes outside it are neither read nor written.
inline void put(float* out, Mask m, Vec x, bool accumulate) { store(out, m, accumulate ? add(x, load(out, m)) : x); }

}  // namespace loom::cpu::gemm_f32::simd

#endif  // AVX-512 or AVX2 + FMA
