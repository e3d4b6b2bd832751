// Fused log-softmax + negative log-likelihood with label smoothing, per row:
//   loss = -(1 - eps) * logp[t] - (eps / C) * sum_c logp[c]
//   dloss/dx_c = scale * (softmax_c - (1 - eps) * [c == t] - eps / C)
// Floor: forward reads N * C logits once, ~N * C exps, and keeps each row's
// log-sum-exp; backward reads the logits once and writes N * C gradients,
// softmax_c = exp(x_c - lse).
// One block per row; the arithmetic per logit in the logits' dtype, f32 for
// bf16 logits (a double exp per logit made the f32 kernels compute-bound at a
// quarter of the copy rate), the block's sums in double, reduced in a fixed
// order (block_reduce.cuh). A target outside [0, C) (other than ignore_index)
// gives a NaN loss and NaN gradients: the kernel cannot raise, and checking
// on the host would cost a device sync. Written on simt.cuh, so the emulator
// runs it (tests/cuda/softmax_loss_emulated_test.cpp).
#pragma once

#include <cmath>
#include <type_traits>

#include "block_reduce.cuh"
#include "pointwise_math.cuh"

namespace loom::cross_entropy_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;
using pointwise::m_exp;

// T: the arithmetic's type, and the per-row values' (losses, lse, scale);
// S: the logits' and their gradients' storage (T, or bf16 with T = float:
// autocast's logits read and their gradients written without a cast pass).
template <class T, class S = T>
struct Rows {
  const S* logits;       // [n, c]
  const void* targets;   // i64 or i32, stride target_stride
  bool targets_64;
  int64_t target_stride;
  const T* scale;  // backward: the loss gradient per row, stride scale_stride
  int64_t scale_stride;
  T* losses;  // forward: [n]
  S* grads;   // backward: [n, c]
  T* lse;     // [n]: written by the forward, read by the backward
  int64_t c, ignore_index;
  double smoothing;
  unsigned threads;
};

// A value of the arithmetic's type stored as S (rounded once when S is bf16).
template <class S, class T>
LOOM_SIMT_DEVICE S store_as(T v) {
  if constexpr (std::is_same_v<S, T>) {
    return v;
  } else {
    return from_float<S>(static_cast<float>(v));
  }
}

LOOM_SIMT_DEVICE int64_t target_at(const void* t, bool is64, int64_t i) {
  return is64 ? static_cast<const int64_t*>(t)[i] : static_cast<int64_t>(static_cast<const int32_t*>(t)[i]);
}

// One block per row: losses[i]. One pass over the row: each thread keeps
// its running maximum m and sum of exp(x - m) in T (rescaled when m grows:
// an online log-sum-exp), and the sum of its logits for the smoothing; the
// block then combines them, in double. Two passes (the maximum first) and
// double arithmetic per logit held the bf16 [8192, 50304] logits of a GPT-2
// step to a quarter of an H200's copy rate.
//
// kPackRescale (the kernel variant cross_entropy_pack_rescale, off unless
// LOOM_KERNEL_VARIANTS names it): a 16-byte pack's logits are compared with
// the running maximum once, through the pack's maximum, so the sum is
// rescaled at most once a pack and each logit adds exp(v - m) without a
// branch. Not yet timed on a device: the per-logit branch it removes
// diverges within a warp wherever a new maximum appears.
template <class T, class S, bool kPackRescale = false>
LOOM_SIMT_GLOBAL void cross_entropy_kernel(Rows<T, S> a) {
  const int64_t i = block_x();
  const int64_t t = target_at(a.targets, a.targets_64, i * a.target_stride);
  if (t == a.ignore_index) {  // uniform across the block
    if (thread_x() == 0) a.losses[i] = a.lse[i] = T(0);
    return;
  }
  const S* row = a.logits + i * a.c;
  const T lowest = -static_cast<T>(INFINITY);
  T m = lowest, e = 0, sx = 0;
  const auto add_logit = [&](S stored, int64_t) {
    const T v = static_cast<T>(stored);
    if (v > m) {
      e = e * m_exp(m - v) + T(1);
      m = v;
    } else if (v != lowest) {  // -inf adds exp(-inf) = 0 (and -inf - -inf would be a NaN); a NaN turns e NaN
      e += m_exp(v - m);
    }
    sx += v;
  };
  if constexpr (kPackRescale) {
    for_each_pack_in_row(
        row, a.c, a.threads,
        [&](const Pack<S>& pack, int64_t) {
          constexpr int kP = kPack<S>;
          T v[kP];
          T pack_max = lowest;
          LOOM_SIMT_UNROLL
          for (int k = 0; k < kP; ++k) {
            v[k] = static_cast<T>(pack.v[k]);
            pack_max = v[k] > pack_max ? v[k] : pack_max;  // a NaN is skipped here and reaches e below
            sx += v[k];
          }
          if (pack_max > m) {
            e *= m_exp(m - pack_max);  // 0 * exp(-inf) = 0 while m is still -inf
            m = pack_max;
          }
          // While m is -inf, every logit so far is -inf or NaN: against 0,
          // -inf adds exp(-inf) = 0 and a NaN turns e NaN, as above.
          const T base = m == lowest ? T(0) : m;
          LOOM_SIMT_UNROLL
          for (int k = 0; k < kP; ++k) e += m_exp(v[k] - base);
        },
        add_logit);
  } else {
    for_each_in_row(row, a.c, a.threads, add_logit);
  }
  const T mx = block_max(m, a.threads);
  // A thread that saw only -inf (or nothing) adds 0 * exp(-inf) = 0, unless
  // it saw a NaN (e is NaN then: the loss must be); a row of only -inf gives
  // exp(-inf - -inf), a NaN, as the two-pass form did.
  const double mine = static_cast<double>(e) * ::exp(static_cast<double>(m - mx));
  const double total = block_sum(mine, a.threads);
  const double sum_x = a.smoothing != 0 ? block_sum(static_cast<double>(sx), a.threads) : 0.0;
  if (thread_x() == 0) {
    const double lse = static_cast<double>(mx) + ::log(total);
    a.lse[i] = static_cast<T>(lse);
    if (t < 0 || t >= a.c) {
      a.losses[i] = static_cast<T>(NAN);
    } else {
      const double nll = lse - static_cast<double>(static_cast<T>(row[t]));
      const double smooth = a.smoothing != 0 ? lse - sum_x / static_cast<double>(a.c) : 0.0;  // as the CPU
      a.losses[i] = static_cast<T>((1.0 - a.smoothing) * nll + a.smoothing * smooth);
    }
  }
}

// One block per row: the row's gradients.
template <class T, class S>
LOOM_SIMT_GLOBAL void cross_entropy_backward_kernel(Rows<T, S> a) {
  const int64_t i = block_x();
  const int64_t t = target_at(a.targets, a.targets_64, i * a.target_stride);
  S* g = a.grads + i * a.c;
  if (t == a.ignore_index) {
    for (int64_t j = thread_x(); j < a.c; j += a.threads) g[j] = store_as<S>(T(0));
    return;
  }
  const S* row = a.logits + i * a.c;
  const T lse = a.lse[i];
  const T sc = a.scale[i * a.scale_stride];
  const T uniform = static_cast<T>(a.smoothing / static_cast<double>(a.c));
  const T hit = static_cast<T>(1.0 - a.smoothing);
  const bool bad = t < 0 || t >= a.c;
  transform_row(row, g, a.c, a.threads, [&](S stored, int64_t j) {
    T d = m_exp(static_cast<T>(stored) - lse) - uniform;
    if (j == t) d -= hit;
    return store_as<S>(bad ? static_cast<T>(NAN) : sc * d);
  });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::cross_entropy_kernels
