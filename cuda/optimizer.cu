// Fused AdamW: one pass over param, grad and the two moments (in place).
// Floor: ~12 FLOPs per element; reads 4 and writes 3 arrays of numel
// elements (7 * numel * itemsize bytes). Memory-bound.
#include <cmath>

#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

__device__ __forceinline__ float o_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double o_sqrt(double v) { return sqrt(v); }

template <class T>
__global__ void adamw_kernel(int64_t n, T* p, const T* g, T* m, T* v, T b1, T b2, T decay, T step, T inv_bc2, T eps) {
  LOOM_GRID_LOOP(i, n) {
    const T gi = g[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (o_sqrt(vi) * inv_bc2 + eps);
  }
}

template <class T>
void launch_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
                  cudaStream_t st) {
  const int64_t n = param.numel();
  adamw_kernel<T><<<grid_for(n), kThreads, 0, st>>>(
      n, static_cast<T*>(param.raw_data()), static_cast<const T*>(grad.raw_data()), static_cast<T*>(m.raw_data()),
      static_cast<T*>(v.raw_data()), static_cast<T>(s.beta1), static_cast<T>(s.beta2),
      static_cast<T>(1.0 - s.lr * s.weight_decay), static_cast<T>(s.lr / s.bias_correction1),
      static_cast<T>(1.0 / std::sqrt(s.bias_correction2)), static_cast<T>(s.eps));
  LOOM_CUDA_CHECK_LAUNCH("adamw_kernel", n, " elements");
}

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
           const AdamWStep& s) {
  OnDevice on(param, "adamw");
  on.check(grad, "adamw", "grad");
  on.check(exp_avg, "adamw", "exp_avg");
  on.check(exp_avg_sq, "adamw", "exp_avg_sq");
  for (const Tensor* t : {&param, &grad, &exp_avg, &exp_avg_sq})
    LOOM_CHECK(t->is_contiguous() && t->numel() == param.numel() && t->dtype() == param.dtype(),
               "adamw: param, grad and moments must be contiguous, of one size and dtype");
  if (param.numel() == 0) return;
  switch (param.dtype()) {
    case DType::f32: return launch_adamw<float>(param, grad, exp_avg, exp_avg_sq, s, on.stream);
    case DType::f64: return launch_adamw<double>(param, grad, exp_avg, exp_avg_sq, s, on.stream);
    default: LOOM_FAIL("adamw: expected a f32 or f64 tensor, got ", dtype_name(param.dtype()));
  }
}

}  // namespace loom::cuda
