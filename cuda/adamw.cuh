// Fused AdamW on one tensor: one pass over param, grad and the two moments
// (in place), f32 or f64 (multi_tensor.cuh takes whole f32 parameter groups
// in a few launches; this is the one-tensor entry, and f64's).
// Floor: ~12 FLOPs per element; reads 4 and writes 3 arrays of numel
// elements (7 * numel * itemsize bytes; 2 bytes more per element with the
// parameter's bf16 copy). Memory-bound. Written on simt.cuh,
// so the emulator runs it (tests/cuda/conv_optimizer_emulated_test.cpp).
#pragma once

#include <cmath>

#include "elements.cuh"
#include "kernels/backend.hpp"
#include "pointwise_math.cuh"

namespace loom::adamw_kernels {
inline namespace LOOM_SIMT_ABI {

using namespace loom::strided;
using pointwise::m_sqrt;

template <class T>
struct Step {
  T b1, b2, decay, step, inv_bc2, eps;
};

// h: null, or the bits of the parameter's bf16 copy (f32 parameters),
// written the updated values' rounding, as the cast would.
template <class T>
LOOM_SIMT_GLOBAL void adamw_kernel(int64_t n, T* p, const T* g, T* m, T* v, uint16_t* h, Step<T> s) {
  LOOM_SIMT_GRID_LOOP(i, n) {
    const T gi = g[i];
    const T mi = s.b1 * m[i] + (T(1) - s.b1) * gi;
    const T vi = s.b2 * v[i] + (T(1) - s.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const T pi = p[i] * s.decay - s.step * mi / (m_sqrt(vi) * s.inv_bc2 + s.eps);
    p[i] = pi;
    if (h != nullptr) h[i] = float_to_bf16(static_cast<float>(pi));
  }
}

// The Backend::adamw entry after its device checks.
template <class Check>
void run(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
         const Tensor& half_copy, const kernels::AdamWStep& s, Stream stream, Check&& check) {
  for (const Tensor* t : {&param, &grad, &exp_avg, &exp_avg_sq})
    LOOM_CHECK(t->is_contiguous() && t->numel() == param.numel() && t->dtype() == param.dtype(),
               "adamw: param, grad and moments must be contiguous, of one size and dtype");
  if (half_copy.defined()) kernels::check_adamw_half_copy(param, half_copy);
  uint16_t* h = half_copy.defined() ? static_cast<uint16_t*>(half_copy.raw_data()) : nullptr;
  const int64_t n = param.numel();
  if (n == 0) return;
  with_f32_or_f64(param.dtype(), "adamw", [&]<class T>() {
    const Step<T> c{static_cast<T>(s.beta1),
                    static_cast<T>(s.beta2),
                    static_cast<T>(1.0 - s.lr * s.weight_decay),
                    static_cast<T>(s.lr / s.bias_correction1),
                    static_cast<T>(1.0 / std::sqrt(s.bias_correction2)),
                    static_cast<T>(s.eps)};
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, adamw_kernel<T>, n, static_cast<T*>(param.raw_data()),
                 static_cast<const T*>(grad.raw_data()), static_cast<T*>(exp_avg.raw_data()),
                 static_cast<T*>(exp_avg_sq.raw_data()), h, c),
          "adamw");
  });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::adamw_kernels
