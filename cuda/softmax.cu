// softmax / log_softmax along the middle axis of a contiguous [outer, r, inner],
// and their backward from the saved output y:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
// Floor: forward reads x and writes out (2 * numel * itemsize bytes), ~numel
// exps; backward reads g and y and writes dx (3 * numel * itemsize).
// inner == 1 (the common last-dim case): one block per row, block reductions.
// inner > 1: one thread per (outer, inner) column walking r (coalesced across
// the columns). Row sums accumulate in double, as on the CPU.
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

__device__ __forceinline__ float s_exp(float v) { return expf(v); }
__device__ __forceinline__ double s_exp(double v) { return exp(v); }

template <class T>
__device__ __forceinline__ T neg_inf() {
  return -static_cast<T>(INFINITY);
}

template <class T>
__global__ void softmax_rows_kernel(const T* x, T* out, int64_t rows, int64_t r, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* in = x + row * r;
    T* o = out + row * r;
    T mx = neg_inf<T>();
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x) {
      const T v = in[k];
      mx = (v > mx || v != v) && mx == mx ? v : mx;
    }
    mx = block_max(mx);
    if (mx == neg_inf<T>()) mx = 0;  // a fully masked row stays finite-safe
    double total = 0;
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x) total += static_cast<double>(s_exp(in[k] - mx));
    total = block_sum(total);
    if (log) {
      const T lse = mx + static_cast<T>(::log(total));
      for (int64_t k = threadIdx.x; k < r; k += blockDim.x) o[k] = in[k] - lse;
    } else {
      const T inv = static_cast<T>(1.0 / total);
      for (int64_t k = threadIdx.x; k < r; k += blockDim.x) o[k] = s_exp(in[k] - mx) * inv;
    }
  }
}

template <class T>
__global__ void softmax_cols_kernel(const T* x, T* out, int64_t outer, int64_t r, int64_t inner, bool log) {
  LOOM_GRID_LOOP(col, outer * inner) {
    const int64_t a = col / inner, c = col - a * inner;
    const T* in = x + a * r * inner + c;
    T* o = out + a * r * inner + c;
    T mx = neg_inf<T>();
    for (int64_t k = 0; k < r; ++k) {
      const T v = in[k * inner];
      mx = (v > mx || v != v) && mx == mx ? v : mx;
    }
    if (mx == neg_inf<T>()) mx = 0;
    double total = 0;
    for (int64_t k = 0; k < r; ++k) total += static_cast<double>(s_exp(in[k * inner] - mx));
    if (log) {
      const T lse = mx + static_cast<T>(::log(total));
      for (int64_t k = 0; k < r; ++k) o[k * inner] = in[k * inner] - lse;
    } else {
      const T inv = static_cast<T>(1.0 / total);
      for (int64_t k = 0; k < r; ++k) o[k * inner] = s_exp(in[k * inner] - mx) * inv;
    }
  }
}

template <class T>
__global__ void softmax_backward_rows_kernel(const T* g, const T* y, T* d, int64_t rows, int64_t r, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * r;
    double s = 0;
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x)
      s += log ? static_cast<double>(g[base + k]) : static_cast<double>(g[base + k]) * static_cast<double>(y[base + k]);
    s = block_sum(s);
    const T st = static_cast<T>(s);
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x) {
      const int64_t i = base + k;
      d[i] = log ? g[i] - s_exp(y[i]) * st : y[i] * (g[i] - st);
    }
  }
}

template <class T>
__global__ void softmax_backward_cols_kernel(const T* g, const T* y, T* d, int64_t outer, int64_t r, int64_t inner,
                                             bool log) {
  LOOM_GRID_LOOP(col, outer * inner) {
    const int64_t a = col / inner, c = col - a * inner;
    const int64_t base = a * r * inner + c;
    double s = 0;
    for (int64_t k = 0; k < r; ++k) {
      const int64_t i = base + k * inner;
      s += log ? static_cast<double>(g[i]) : static_cast<double>(g[i]) * static_cast<double>(y[i]);
    }
    const T st = static_cast<T>(s);
    for (int64_t k = 0; k < r; ++k) {
      const int64_t i = base + k * inner;
      d[i] = log ? g[i] - s_exp(y[i]) * st : y[i] * (g[i] - st);
    }
  }
}

template <class T>
void launch_softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log,
                    cudaStream_t s) {
  const T* xp = static_cast<const T*>(x.raw_data());
  T* op = static_cast<T*>(out.raw_data());
  if (inner == 1) {
    softmax_rows_kernel<T><<<row_grid(outer), row_threads(r), 0, s>>>(xp, op, outer, r, log);
  } else {
    softmax_cols_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(xp, op, outer, r, inner, log);
  }
  LOOM_CUDA_CHECK_LAUNCH("softmax kernel", "[", outer, ", ", r, ", ", inner, "]");
}

template <class T>
void launch_softmax_backward(const Tensor& g, const Tensor& y, const Tensor& d, int64_t outer, int64_t r,
                             int64_t inner, bool log, cudaStream_t s) {
  const T* gp = static_cast<const T*>(g.raw_data());
  const T* yp = static_cast<const T*>(y.raw_data());
  T* dp = static_cast<T*>(d.raw_data());
  if (inner == 1) {
    softmax_backward_rows_kernel<T><<<row_grid(outer), row_threads(r), 0, s>>>(gp, yp, dp, outer, r, log);
  } else {
    softmax_backward_cols_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(gp, yp, dp, outer, r, inner, log);
  }
  LOOM_CUDA_CHECK_LAUNCH("softmax backward kernel", "[", outer, ", ", r, ", ", inner, "]");
}

void check_block(const Tensor& t, int64_t outer, int64_t r, int64_t inner, const char* op, const char* arg) {
  LOOM_CHECK(t.is_contiguous() && t.numel() == outer * r * inner, op, ": '", arg, "' ", shape_str(t.shape()),
             " is not a contiguous [", outer, ", ", r, ", ", inner, "] block");
}

}  // namespace

void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  OnDevice on(out, "softmax");
  on.check(x, "softmax", "x");
  check_block(x, outer, r, inner, "softmax", "x");
  check_block(out, outer, r, inner, "softmax", "out");
  LOOM_CHECK(out.dtype() == x.dtype(), "softmax: dtype mismatch");
  if (outer * r * inner == 0) return;
  switch (x.dtype()) {
    case DType::f32: return launch_softmax<float>(x, out, outer, r, inner, log, on.stream);
    case DType::f64: return launch_softmax<double>(x, out, outer, r, inner, log, on.stream);
    default: LOOM_FAIL("softmax: expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
  }
}

void softmax_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                      int64_t inner, bool log) {
  OnDevice on(grad_in, "softmax backward");
  on.check(grad, "softmax backward", "grad");
  on.check(y, "softmax backward", "y");
  check_block(grad, outer, r, inner, "softmax backward", "grad");
  check_block(y, outer, r, inner, "softmax backward", "y");
  check_block(grad_in, outer, r, inner, "softmax backward", "grad_in");
  LOOM_CHECK(grad.dtype() == y.dtype() && grad_in.dtype() == y.dtype(), "softmax backward: dtype mismatch");
  if (outer * r * inner == 0) return;
  switch (y.dtype()) {
    case DType::f32: return launch_softmax_backward<float>(grad, y, grad_in, outer, r, inner, log, on.stream);
    case DType::f64: return launch_softmax_backward<double>(grad, y, grad_in, outer, r, inner, log, on.stream);
    default: LOOM_FAIL("softmax backward: expected a f32 or f64 tensor, got ", dtype_name(y.dtype()));
  }
}

}  // namespace loom::cuda
