// Fused optimizer updates: one pass over param, grad and the moments.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"

namespace loom::cpu {

void adamw(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
           const AdamWStep& s) {
  dispatch_float(param.dtype(), "adamw", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* m = ptr<T>(exp_avg);
    T* v = ptr<T>(exp_avg_sq);
    const T b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
    const T decay = static_cast<T>(1.0 - s.lr * s.weight_decay);
    const T step = static_cast<T>(s.lr / s.bias_correction1);
    const T inv_bc2 = static_cast<T>(1.0 / std::sqrt(s.bias_correction2));
    const T eps = static_cast<T>(s.eps);
    const int64_t n = param.numel();
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (T(1) - b1) * g[i];
      v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
      p[i] = p[i] * decay - step * m[i] / (std::sqrt(v[i]) * inv_bc2 + eps);
    }
  });
}

}  // namespace loom::cpu
