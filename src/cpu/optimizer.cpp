// Fused optimizer updates, and the gradient norm's sum of squares.
// The updates: one pass over param, grad and the moments, split
// across the kernel thread pool in whole blocks of 16 elements (so which
// elements take the vector body does not depend on the thread count).
// f32 on AVX-512 runs 16 lanes with intrinsics; elsewhere GCC vectorises the
// scalar loop, since this file is compiled with -fno-math-errno (std::sqrt
// setting errno would keep it scalar).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_row.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// The update's constants in the parameter type.
template <class T>
struct AdamWConsts {
  T b1, b2, decay, step, inv_bc2, eps;
  explicit AdamWConsts(const AdamWStep& s)
      : b1(static_cast<T>(s.beta1)),
        b2(static_cast<T>(s.beta2)),
        decay(static_cast<T>(1.0 - s.lr * s.weight_decay)),
        step(static_cast<T>(s.lr / s.bias_correction1)),
        inv_bc2(static_cast<T>(1.0 / std::sqrt(s.bias_correction2))),
        eps(static_cast<T>(s.eps)) {}
};

// p[lo, hi) rounded into the parameter's bf16 copy h, when it has one.
inline void write_half_copy(const float* p, bf16* h, int64_t lo, int64_t hi) {
  if (h == nullptr) return;
  for (int64_t i = lo; i < hi; ++i) h[i] = bf16(p[i]);
}

template <class T>
void adamw_scalar(T* p, const T* g, T* m, T* v, int64_t lo, int64_t hi, const AdamWConsts<T>& c) {
  for (int64_t i = lo; i < hi; ++i) {
    const T mi = c.b1 * m[i] + (T(1) - c.b1) * g[i];
    const T vi = c.b2 * v[i] + (T(1) - c.b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * c.decay - c.step * mi / (std::sqrt(vi) * c.inv_bc2 + c.eps);
  }
}

#if defined(__AVX512F__)
// The same update on [lo, hi), a multiple of 16 long.
void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t lo, int64_t hi,
                  const AdamWConsts<float>& c) {
  const __m512 b1 = _mm512_set1_ps(c.b1), b2 = _mm512_set1_ps(c.b2);
  const __m512 nb1 = _mm512_set1_ps(1.0f - c.b1), nb2 = _mm512_set1_ps(1.0f - c.b2);
  const __m512 decay = _mm512_set1_ps(c.decay), step = _mm512_set1_ps(c.step);
  const __m512 inv_bc2 = _mm512_set1_ps(c.inv_bc2), eps = _mm512_set1_ps(c.eps);
  for (int64_t i = lo; i < hi; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(nb1, gi));
    const __m512 vi =
        _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(nb2, gi), gi));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), inv_bc2), eps);
    const __m512 upd = _mm512_div_ps(_mm512_mul_ps(step, mi), den);
    _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), decay), upd));
  }
}
#endif

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
           const Tensor& half_copy, const AdamWStep& s) {
  if (half_copy.defined()) kernels::check_adamw_half_copy(param, half_copy);
  dispatch_float(param.dtype(), "adamw", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* m = ptr<T>(exp_avg);
    T* v = ptr<T>(exp_avg_sq);
    bf16* h = half_copy.defined() ? ptr<bf16>(half_copy) : nullptr;
    const AdamWConsts<T> c(s);
    // [lo, hi): the update, then (f32) the copy while the block is in cache.
    const auto update = [&](int64_t lo, int64_t hi, bool vector_body) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (vector_body) {
          adamw_avx512(p, g, m, v, lo, hi, c);
          write_half_copy(p, h, lo, hi);
          return;
        }
      }
#endif
      (void)vector_body;
      adamw_scalar(p, g, m, v, lo, hi, c);
      if constexpr (std::is_same_v<T, float>) write_half_copy(p, h, lo, hi);
    };
    constexpr int64_t kBlock = 16, kGrainBlocks = 2048;
    const int64_t n = param.numel(), blocks = n / kBlock;
    parallel_for(0, blocks, kGrainBlocks,
                 [&](int64_t b0, int64_t b1) { update(b0 * kBlock, b1 * kBlock, /*vector_body=*/true); });
    update(blocks * kBlock, n, /*vector_body=*/false);
  });
}

namespace {

// The sum of x² over x[0, n), in lanes of double partial sums (vec_row.hpp).
template <class T>
double squares(const T* x, int64_t n) {
  return lane_sum<double>(n, [x](int64_t i) {
    const double v = x[i];
    return v * v;
  });
}

}  // namespace

bool sum_squares(const std::vector<Tensor>& tensors, double* out) {
  // Fixed chunks of every tensor, each summed alone, the chunks' sums added
  // in order: the same bits for any thread count.
  constexpr int64_t kChunk = 1 << 14;
  struct Chunk {
    const void* data;
    int64_t n;
    bool f64;
  };
  std::vector<Chunk> chunks;
  for (const Tensor& t : tensors) {
    if (!t.is_contiguous() || (t.dtype() != DType::f32 && t.dtype() != DType::f64)) return false;
    const bool f64 = t.dtype() == DType::f64;
    const auto* base = static_cast<const char*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); i += kChunk)
      chunks.push_back({base + i * static_cast<int64_t>(itemsize(t.dtype())), std::min(kChunk, t.numel() - i), f64});
  }
  std::vector<double> partial(chunks.size());
  parallel_for(0, static_cast<int64_t>(chunks.size()), 4, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const Chunk& k = chunks[static_cast<size_t>(c)];
      partial[static_cast<size_t>(c)] = k.f64 ? squares(static_cast<const double*>(k.data), k.n)
                                              : squares(static_cast<const float*>(k.data), k.n);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  *out = total;
  return true;
}

}  // namespace loom::cpu
