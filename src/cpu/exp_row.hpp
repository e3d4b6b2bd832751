// e^(x - shift) over one contiguous row, summed and optionally stored: the
// inner loop of softmax, log-softmax, cross-entropy and the fused attention's
// scores.
//
// For f32 on AVX-512 the vector body computes e^y = p(r) · 2^n with y = n ln2
// + r, |r| <= ln2 / 2, p the degree-7 Taylor polynomial (truncation 7e-9),
// and applies 2^n with vscalefps, which also rounds denormal and overflowing
// results correctly. The portable vec::exp cannot scale in one instruction:
// it keeps 2^h normal by squaring it, so its polynomial covers |r| <= ln2 and
// needs degree 9. Measured on one core over an L1-resident row of 1024: 0.156
// against 0.21 ns per element. Both stay within 2e-7 of the correctly rounded
// result (tests/unit/vec_math_test.cpp); -inf gives 0, +inf gives inf, NaN
// gives NaN. Other types and machines run vec::exp (libm for f64) in lanes.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "gemm_simd.hpp"
#include "vec_math.hpp"
#include "vec_row.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace loom::cpu {

namespace detail {

// A row's maximum as a shift: 0 when it is -inf (a fully masked row), so
// that x − shift stays -inf and its exponentials 0 instead of NaN.
template <class T>
T finite_shift(T mx) {
  return mx == -std::numeric_limits<T>::infinity() ? T(0) : mx;
}

// The row's maximum, or 0 when that is -inf: ShiftedExpSum's shift.
template <class T>
T finite_row_max(const T* x, int64_t n) {
  return finite_shift(lane_max(x, n));
}

}  // namespace detail

#if defined(__AVX512F__)
namespace detail {

// The zero-masking forms with every lane selected: the plain ones of GCC 12's
// headers merge into _mm512_undefined_ps(), a self-initialised variable that
// -Wuninitialized reports wherever they are inlined.
inline constexpr __mmask16 kAll = 0xffff;

// The first `count` lanes of a vector (all from 16 on, none from 0 down): the
// GEMM's lane masks, without BMI2's bzhi, which AVX-512F alone does not imply.
using gemm_f32::simd::first_lanes;

inline __m512 exp16(__m512 y) {
  // Clamped as vec::exp clamps; max(c, y) and min(c, y) return y when it is NaN.
  y = _mm512_maskz_min_ps(kAll, _mm512_set1_ps(89.0f), _mm512_maskz_max_ps(kAll, _mm512_set1_ps(-104.0f), y));
  const __m512 n = _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), y);  // ln2 split hi + lo
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_maskz_scalef_ps(kAll, p, n);
}

// Hands each(i, lanes, e) every block of 16 terms from x + i (lanes: the
// mask of those inside the row), e = e^(x − shift), two blocks in flight;
// returns the sum of the terms when kSum.
template <bool kSum, class Each>
double exp_blocks(const float* x, int64_t n, float shift, Each&& each) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), s));
    each(i, kAll, e0);
    each(i + 16, kAll, e1);
    if constexpr (kSum) {
      acc0 = _mm512_add_ps(acc0, e0);
      acc1 = _mm512_add_ps(acc1, e1);
    }
  }
  for (; i < n; i += 16) {  // at most two more blocks, the last one partial
    const __mmask16 m = first_lanes(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    each(i, m, e);
    if constexpr (kSum) acc0 = _mm512_mask_add_ps(acc0, m, acc0, e);
  }
  if constexpr (!kSum) return 0;
  float lanes[kLanes];
  _mm512_storeu_ps(lanes, _mm512_add_ps(acc0, acc1));
  return lanes_total(lanes);
}

// The row's per-lane running maxima and sums of e^(x − max) in one pass:
// each block of 8 vectors is read once, its maximum taken, the lanes' sums
// rescaled by e^(old max − new max) (exactly 1 in lanes whose max did not
// move) and its exponentials added. One exp in 9 is the rescale's, instead of
// a second pass over the row: the loads of the next block overlap this
// block's arithmetic. 2048 rows of 4096 (cross-entropy's forward, 2 cores):
// 1.33 ms in two passes, 0.83 ms with blocks of 4 vectors, 0.79 with 8.
struct LaneExpSums {
  __m512 max;  // -inf in lanes that saw only -inf; never NaN
  __m512 sum;  // Σ e^(x − shift) per lane, shift = max, or 0 where max is -inf
};

constexpr int kExpBlock = 8;  // vectors a block
constexpr int64_t kExpSpan = 16 * kExpBlock;

// Takes in one block: its lane-wise maximum, the lanes' sums rescaled to the
// new maxima (by exactly 1 in lanes whose maximum did not move; nothing to
// rescale in a row's first block), then its exponentials e, handed to
// each(max, e) as well: e = e^(x − max), or 0 in a lane whose max is still
// -inf (its shift is 0 there), so e · e^(max − m) is e^(x − m) for any
// finite m in every lane whose max is not +inf. Lanes outside `in` hold -inf
// and their terms are 0: their e^-inf is never computed, because it
// underflows, and an underflowing result costs a microcode assist (rows of
// 192 ran at 0.87 ns an element, 0.51 without). A NaN reaches the sum
// through its own exponential; the maxima are then unspecified (vmaxps
// returns its second operand when either is NaN, so a NaN may hide its
// partner in the block's tree) but stay numbers: the last max takes the
// lanes' own, never NaN, second.
template <class Each>
inline void add_block(LaneExpSums& acc, bool first, const __m512 (&v)[kExpBlock], const __mmask16 (&in)[kExpBlock],
                      Each&& each) {
  __m512 pairs[kExpBlock / 2];  // the block's maximum as a tree, not a chain of dependent max
  for (int k = 0; k < kExpBlock / 2; ++k) pairs[k] = _mm512_maskz_max_ps(kAll, v[2 * k], v[2 * k + 1]);
  for (int w = kExpBlock / 4; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) pairs[k] = _mm512_maskz_max_ps(kAll, pairs[2 * k], pairs[2 * k + 1]);
  const __m512 max = _mm512_maskz_max_ps(kAll, pairs[0], acc.max);
  const __m512 shift = _mm512_mask_mov_ps(max, _mm512_cmp_ps_mask(max, _mm512_set1_ps(-__builtin_inff()), _CMP_EQ_OQ),
                                          _mm512_setzero_ps());
  __m512 e[kExpBlock];
  for (int k = 0; k < kExpBlock; ++k) e[k] = _mm512_maskz_mov_ps(in[k], exp16(_mm512_maskz_sub_ps(in[k], v[k], shift)));
  __m512 terms = e[0];
  for (int k = 1; k < kExpBlock; ++k) terms = _mm512_add_ps(terms, e[k]);
  each(max, e);
  acc.sum = first ? terms : _mm512_fmadd_ps(acc.sum, exp16(_mm512_sub_ps(acc.max, shift)), terms);
  acc.max = max;
}

// The lanes' running maxima and sums over x[0, n); each(i, max, e, in)
// sees every block: its first element i, the lanes' maxima and exponentials
// as add_block hands them on, and the lanes in the row.
template <class Each>
inline LaneExpSums lane_exp_sums(const float* x, int64_t n, Each&& each) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  LaneExpSums acc{ninf, _mm512_setzero_ps()};
  __m512 v[kExpBlock];
  __mmask16 in[kExpBlock];
  int64_t i = 0;
  for (; i + kExpSpan <= n; i += kExpSpan) {
    for (int k = 0; k < kExpBlock; ++k) {
      v[k] = _mm512_loadu_ps(x + i + 16 * k);
      in[k] = kAll;
    }
    add_block(acc, i == 0, v, in, [&](__m512 max, const __m512(&e)[kExpBlock]) { each(i, max, e, in); });
  }
  if (i < n) {
    // The rest as one whole block (a block of fewer vectors, counted at run
    // time, went through the stack). Vectors wholly past the row are not
    // loaded at all: a load with an empty mask one vector past the row cost
    // this AMD machine as much as a cache miss (rows of 240 ran at 1.1 ns an
    // element against 0.36 for rows of 256).
    for (int k = 0; k < kExpBlock; ++k) {
      const int64_t left = n - i - 16 * k;
      in[k] = first_lanes(left);
      v[k] = left > 0 ? _mm512_mask_loadu_ps(ninf, in[k], x + i + 16 * k) : ninf;
    }
    add_block(acc, i == 0, v, in, [&](__m512 max, const __m512(&e)[kExpBlock]) { each(i, max, e, in); });
  }
  return acc;
}

// The row's maximum (0 for -inf, as ShiftedExpSum's shift) and its sum of
// e^(x − max) from the lanes' running ones.
inline std::pair<float, double> combine_lanes(const LaneExpSums& lanes) {
  float lane_maxima[kLanes];  // not _mm512_reduce_max_ps: GCC 12's warns as the plain forms do
  _mm512_storeu_ps(lane_maxima, lanes.max);
  const float mx = finite_row_max(lane_maxima, kLanes);
  // Each lane's sum moved from its own max to the row's: e^(lane max − mx) <= 1.
  float part[kLanes];
  _mm512_storeu_ps(part, _mm512_mul_ps(lanes.sum, exp16(_mm512_sub_ps(lanes.max, _mm512_set1_ps(mx)))));
  return {mx, lanes_total(part)};
}

}  // namespace detail
#endif

// A row's log-sum-exp as shift + log(sum): shift is the row's maximum, or 0
// when that is -inf (an empty or fully masked row, whose sum is then 0), and
// sum = Σ_k e^(x[k] − shift) in double. With a NaN in the row the sum is NaN
// and the shift a number, not NaN (the maximum of what the NaN leaves
// visible, or 0).
template <class T>
struct ShiftedExpSum {
  T shift;
  double sum;
};

namespace detail {

// The portable bodies: vec::exp for float (libm for double) in lanes.
template <class T>
double exp_row_sum_lanes(const T* x, T* out, int64_t n, T shift) {
  if (out) return lane_sum<T>(n, [&](int64_t k) { return out[k] = math<T>::exp(x[k] - shift); });
  return lane_sum<T>(n, [&](int64_t k) { return math<T>::exp(x[k] - shift); });
}
template <class T>
void exp_row_affine_lanes(const T* x, T* out, int64_t n, T shift, T a, T b) {
  for (int64_t k = 0; k < n; ++k) out[k] = a * math<T>::exp(x[k] - shift) + b;
}
template <class T>
ShiftedExpSum<T> shifted_exp_sum_lanes(const T* x, int64_t n) {
  const T mx = finite_row_max(x, n);
  return {mx, exp_row_sum_lanes<T>(x, nullptr, n, mx)};
}

}  // namespace detail

// Σ_k e^(x[k] − shift) over k < n, in double; out[k] = e^(x[k] − shift) as
// well when out is not null (out may be x itself, not a partial overlap).
template <class T>
double exp_row_sum(const T* x, T* out, int64_t n, T shift) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (!out) return detail::exp_blocks<true>(x, n, shift, [](int64_t, __mmask16, __m512) {});
    return detail::exp_blocks<true>(x, n, shift,
                                    [&](int64_t i, __mmask16 m, __m512 e) { _mm512_mask_storeu_ps(out + i, m, e); });
  }
#endif
  return detail::exp_row_sum_lanes(x, out, n, shift);
}

// One pass over x where AVX-512 allows and the row spans two blocks or more
// (each element read once, the maximum and the sum kept together per lane);
// the maximum, then the sum, otherwise.
template <class T>
ShiftedExpSum<T> shifted_exp_sum(const T* x, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // A row shorter than two blocks waits on its own chain of max, exp and
    // sum with little to overlap: rows of 128 ran 0.55 ns an element in one
    // pass, 0.49 in two.
    if (n >= 2 * detail::kExpSpan) {
      const auto [mx, total] = detail::combine_lanes(detail::lane_exp_sums(x, n, [](auto&&...) {}));
      return {mx, total};
    }
  }
#endif
  const T mx = detail::finite_row_max(x, n);
  return {mx, exp_row_sum<T>(x, nullptr, n, mx)};
}

// softmax of one row into out (which may be x) with x read once, or false
// (nothing written) for a row the caller's passes take: not f32 on AVX-512,
// shorter than two blocks (256; see shifted_exp_sum), or longer than 64
// blocks (8192).
// Each block's e^(x − its lanes' maxima) is stored as the one-pass sum makes
// it, the maxima kept; then a pass over out, from L1/L2, scales each block's
// lanes by e^(lane max − row max) / sum (one exp per block; 0 in a lane that
// saw only -inf so far, whose stored terms are 0). Against max, then exp
// and store, then scale: the block loads overlap the arithmetic. Two float
// differences are rounded (x − shift, shift − max) where the passes round
// one: a small result e^(x − max) carries up to 2^-23 |x − max| relative
// error instead of 2^-24 |x − max| (1e-6 at x − max = -16, e^-16 = 1e-7).
template <class T>
bool softmax_row_one_pass(const T* x, T* out, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    constexpr int64_t kMaxBlocks = 64;
    if (n < 2 * detail::kExpSpan || n > kMaxBlocks * detail::kExpSpan) return false;
    __m512 block_max[kMaxBlocks];
    const auto [mx, total] = detail::combine_lanes(detail::lane_exp_sums(
        x, n, [&](int64_t i, __m512 max, const __m512(&e)[detail::kExpBlock], const __mmask16(&in)[detail::kExpBlock]) {
          block_max[i / detail::kExpSpan] = max;
          for (int k = 0; k < detail::kExpBlock; ++k)  // no store wholly past the row (see lane_exp_sums' loads)
            if (in[k]) _mm512_mask_storeu_ps(out + i + 16 * k, in[k], e[k]);
        }));
    const __m512 row_max = _mm512_set1_ps(mx), inv = _mm512_set1_ps(static_cast<float>(1.0 / total));
    for (int64_t i = 0; i < n; i += detail::kExpSpan) {
      const __m512 scale = _mm512_mul_ps(detail::exp16(_mm512_sub_ps(block_max[i / detail::kExpSpan], row_max)), inv);
      for (int64_t j = i; j < i + detail::kExpSpan && j < n; j += 16) {
        const __mmask16 m = detail::first_lanes(n - j);
        _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, out + j), scale));
      }
    }
    return true;
  }
#endif
  (void)x, (void)out, (void)n;
  return false;
}

// out[k] = a · e^(x[k] − shift) + b for k < n (out may be x itself, not a
// partial overlap): the cross-entropy gradient (a the row's scale, b its
// smoothing share) and the attention backward's P (a = 1, b = 0).
template <class T>
void exp_row_affine(const T* x, T* out, int64_t n, T shift, T a, T b) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    detail::exp_blocks<false>(x, n, shift, [&](int64_t i, __mmask16 m, __m512 e) {
      _mm512_mask_storeu_ps(out + i, m, _mm512_fmadd_ps(va, e, vb));
    });
    return;
  }
#endif
  detail::exp_row_affine_lanes(x, out, n, shift, a, b);
}

}  // namespace loom::cpu
