// Fused log-softmax + negative log-likelihood with label smoothing, per row:
//   loss = -(1 - eps) * logp[t] - (eps / C) * sum_c logp[c]
//   dloss/dx_c = softmax_c - (1 - eps) * [c == t] - eps / C
// The full log-probabilities are never stored. Rows run in parallel; each is
// read from memory once for its maximum and sum of exp(x - max) together
// (exp_row.hpp), then revisited from L1/L2 for the sum of x with smoothing.
// The forward keeps each row's log-sum-exp, so the backward is one pass:
// softmax_c = exp(x_c - lse).
#include <cmath>
#include <limits>

#include "cpu/exp_row.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_row.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

template <class I>
int64_t target_at(const Tensor& targets, int64_t i) {
  return static_cast<int64_t>(ptr<I>(targets)[i * targets.stride(0)]);
}

// The target class of row i, checked against c; ignore_index passes through.
int64_t read_target(const Tensor& targets, int64_t i, int64_t c, int64_t ignore_index) {
  const int64_t t = targets.dtype() == DType::i64 ? target_at<int64_t>(targets, i) : target_at<int32_t>(targets, i);
  LOOM_CHECK(t == ignore_index || (t >= 0 && t < c), "cross_entropy: target ", t, " at row ", i,
             " is out of range for ", c, " classes");
  return t;
}

int64_t row_grain(int64_t c) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, c)); }

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                   const CrossEntropyParams& p) {
  // bf16 (and f16) logits: the f32 kernel on their exact f32 values (the
  // losses and lse are f32 then).
  if (is_half(logits.dtype())) return cross_entropy(logits.to(DType::f32), targets, losses, lse, p);
  const int64_t n = logits.size(0), c = logits.size(1);
  dispatch_float(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* xp = ptr<T>(logits);
    T* lp = ptr<T>(losses);
    T* sp = ptr<T>(lse);
    parallel_for(0, n, row_grain(c), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = read_target(targets, i, c, p.ignore_index);
        if (t == p.ignore_index) {
          lp[i] = 0;
          sp[i] = 0;
          continue;
        }
        const T* row = xp + i * c;
        const ShiftedExpSum<T> e = shifted_exp_sum(row, c);
        const double lse = e.shift + std::log(e.sum);
        sp[i] = static_cast<T>(lse);
        const double nll = lse - row[t];
        // -mean_c logp[c], only with smoothing: masked (-inf) logits would
        // make it infinite, and 0 * inf a NaN loss.
        const double smooth =
            p.label_smoothing != 0 ? lse - lane_sum<T>(c, [&](int64_t j) { return row[j]; }) / static_cast<double>(c)
                                   : 0.0;
        lp[i] = static_cast<T>((1.0 - p.label_smoothing) * nll + p.label_smoothing * smooth);
      }
    });
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p) {
  if (is_half(logits.dtype())) {  // f32 gradients, rounded once into the logits' dtype
    Tensor grad = empty(logits.shape(), TensorOptions(DType::f32).with_device(logits.device()));
    cross_entropy_backward(logits.to(DType::f32), targets, lse, row_scale, grad, p);
    copy(grad, grad_logits);
    return;
  }
  const int64_t n = logits.size(0), c = logits.size(1);
  dispatch_float(logits.dtype(), "cross_entropy backward", [&]<class T>() {
    const T* xp = ptr<T>(logits);
    const T* lse_p = ptr<T>(lse);
    const T* sp = ptr<T>(row_scale);
    T* gp = ptr<T>(grad_logits);
    parallel_for(0, n, row_grain(c), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t t = read_target(targets, i, c, p.ignore_index);
        T* g = gp + i * c;
        if (t == p.ignore_index) {
          std::fill(g, g + c, T(0));
          continue;
        }
        const T* row = xp + i * c;
        const T lse_i = lse_p[i];
        const double scale = sp[i * row_scale.stride(0)];
        const T k = static_cast<T>(scale);
        const T shift = static_cast<T>(scale * p.label_smoothing / static_cast<double>(c));
        exp_row_affine<T>(row, g, c, lse_i, k, -shift);
        g[t] -= static_cast<T>(scale * (1.0 - p.label_smoothing));
      }
    });
  });
}

}  // namespace loom::cpu
