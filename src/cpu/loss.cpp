// Fused log-softmax + negative log-likelihood with label smoothing, per row:
//   loss = -(1 - eps) * logp[t] - (eps / C) * sum_c logp[c]
//   dloss/dx_c = softmax_c - (1 - eps) * [c == t] - eps / C
// The full log-probabilities are never stored.
#include <cmath>
#include <limits>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"

namespace loom::cpu {

namespace {

template <class I>
int64_t target_at(const Tensor& targets, int64_t i) {
  return static_cast<int64_t>(ptr<I>(targets)[i * targets.stride(0)]);
}

int64_t read_target(const Tensor& targets, int64_t i) {
  return targets.dtype() == DType::i64 ? target_at<int64_t>(targets, i) : target_at<int32_t>(targets, i);
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const CrossEntropyParams& p) {
  const int64_t n = logits.size(0), c = logits.size(1);
  dispatch_float(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* xp = ptr<T>(logits);
    T* lp = ptr<T>(losses);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = read_target(targets, i);
      if (t == p.ignore_index) {
        lp[i] = 0;
        continue;
      }
      LOOM_CHECK(t >= 0 && t < c, "cross_entropy: target ", t, " at row ", i, " is out of range for ", c, " classes");
      const T* row = xp + i * c;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, row[j]);
      double total = 0, sum_x = 0;
      for (int64_t j = 0; j < c; ++j) {
        total += std::exp(static_cast<double>(row[j] - mx));
        sum_x += row[j];
      }
      const double lse = mx + std::log(total);
      const double nll = lse - row[t];
      const double smooth = lse - sum_x / static_cast<double>(c);  // -mean_c logp[c]
      lp[i] = static_cast<T>((1.0 - p.label_smoothing) * nll + p.label_smoothing * smooth);
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p) {
  const int64_t n = logits.size(0), c = logits.size(1);
  dispatch_float(logits.dtype(), "cross_entropy backward", [&]<class T>() {
    const T* xp = ptr<T>(logits);
    const T* sp = ptr<T>(row_scale);
    T* gp = ptr<T>(grad_logits);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = read_target(targets, i);
      T* g = gp + i * c;
      if (t == p.ignore_index) {
        std::fill(g, g + c, T(0));
        continue;
      }
      const T* row = xp + i * c;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, row[j]);
      double total = 0;
      for (int64_t j = 0; j < c; ++j) total += std::exp(static_cast<double>(row[j] - mx));
      const double scale = sp[i * row_scale.stride(0)];
      const double uniform = p.label_smoothing / static_cast<double>(c);
      for (int64_t j = 0; j < c; ++j) {
        double d = std::exp(static_cast<double>(row[j] - mx)) / total - uniform;
        if (j == t) d -= 1.0 - p.label_smoothing;
        g[j] = static_cast<T>(scale * d);
      }
    }
  });
}

}  // namespace loom::cpu
