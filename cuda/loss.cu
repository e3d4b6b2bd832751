// Fused log-softmax + negative log-likelihood with label smoothing, per row:
//   loss = -(1 - eps) * logp[t] - (eps / C) * sum_c logp[c]
//   dloss/dx_c = softmax_c - (1 - eps) * [c == t] - eps / C
// Floor: forward reads N * C logits once (two passes, the second from cache),
// ~N * C exps; backward reads them and writes N * C gradients.
// One block per row; sums in double, as on the CPU. A target outside
// [0, C) (other than ignore_index) gives a NaN loss and NaN gradients: the
// kernel cannot raise, and checking on the host would cost a device sync.
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

__device__ __forceinline__ double l_exp(double v) { return exp(v); }

__device__ __forceinline__ int64_t target_at(const void* t, bool is64, int64_t i) {
  return is64 ? static_cast<const int64_t*>(t)[i] : static_cast<int64_t>(static_cast<const int32_t*>(t)[i]);
}

template <class T>
__device__ __forceinline__ T row_max(const T* row, int64_t c) {
  T mx = -static_cast<T>(INFINITY);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const T v = row[j];
    mx = (v > mx || v != v) && mx == mx ? v : mx;
  }
  return block_max(mx);
}

template <class T>
__global__ void ce_kernel(const T* x, const void* targets, bool t64, int64_t t_stride, T* losses, int64_t n,
                          int64_t c, int64_t ignore_index, double smoothing) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t t = target_at(targets, t64, i * t_stride);
    if (t == ignore_index) {
      if (threadIdx.x == 0) losses[i] = T(0);
      continue;  // uniform across the block
    }
    const T* row = x + i * c;
    const T mx = row_max(row, c);
    double total = 0, sum_x = 0;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      total += l_exp(static_cast<double>(row[j] - mx));
      sum_x += static_cast<double>(row[j]);
    }
    total = block_sum(total);
    sum_x = block_sum(sum_x);
    if (threadIdx.x == 0) {
      if (t < 0 || t >= c) {
        losses[i] = static_cast<T>(NAN);
      } else {
        const double lse = static_cast<double>(mx) + log(total);
        const double nll = lse - static_cast<double>(row[t]);
        const double smooth = lse - sum_x / static_cast<double>(c);
        losses[i] = static_cast<T>((1.0 - smoothing) * nll + smoothing * smooth);
      }
    }
  }
}

template <class T>
__global__ void ce_backward_kernel(const T* x, const void* targets, bool t64, int64_t t_stride, const T* scale,
                                   int64_t s_stride, T* grad, int64_t n, int64_t c, int64_t ignore_index,
                                   double smoothing) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t t = target_at(targets, t64, i * t_stride);
    T* g = grad + i * c;
    if (t == ignore_index) {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) g[j] = T(0);
      continue;
    }
    const T* row = x + i * c;
    const T mx = row_max(row, c);
    double total = 0;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) total += l_exp(static_cast<double>(row[j] - mx));
    total = block_sum(total);
    const double sc = static_cast<double>(scale[i * s_stride]);
    const double uniform = smoothing / static_cast<double>(c);
    const bool bad = t < 0 || t >= c;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      double d = l_exp(static_cast<double>(row[j] - mx)) / total - uniform;
      if (j == t) d -= 1.0 - smoothing;
      g[j] = bad ? static_cast<T>(NAN) : static_cast<T>(sc * d);
    }
  }
}

void check_args(const Tensor& logits, const Tensor& targets, const char* op) {
  LOOM_CHECK(logits.dim() == 2 && logits.is_contiguous(), op, ": logits must be a contiguous [N, C], got ",
             shape_str(logits.shape()));
  LOOM_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets ", shape_str(targets.shape()),
             " for logits ", shape_str(logits.shape()));
  LOOM_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, op, ": targets must be i64 or i32, got ",
             dtype_name(targets.dtype()));
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy");
  on.check(targets, "cross_entropy", "targets");
  on.check(losses, "cross_entropy", "losses");
  check_args(logits, targets, "cross_entropy");
  LOOM_CHECK(losses.is_contiguous() && losses.numel() == logits.size(0) && losses.dtype() == logits.dtype(),
             "cross_entropy: losses must be a contiguous [N] of the logits' dtype");
  const int64_t n = logits.size(0), c = logits.size(1);
  if (n == 0) return;
  LOOM_CHECK(c > 0, "cross_entropy: no classes");
  const bool t64 = targets.dtype() == DType::i64;
  const unsigned grid = row_grid(n);
  const int threads = row_threads(c);
  switch (logits.dtype()) {
    case DType::f32:
      ce_kernel<float><<<grid, threads, 0, on.stream>>>(static_cast<const float*>(logits.raw_data()),
                                                        targets.raw_data(), t64, targets.stride(0),
                                                        static_cast<float*>(losses.raw_data()), n, c, p.ignore_index,
                                                        p.label_smoothing);
      break;
    case DType::f64:
      ce_kernel<double><<<grid, threads, 0, on.stream>>>(static_cast<const double*>(logits.raw_data()),
                                                         targets.raw_data(), t64, targets.stride(0),
                                                         static_cast<double*>(losses.raw_data()), n, c,
                                                         p.ignore_index, p.label_smoothing);
      break;
    default: LOOM_FAIL("cross_entropy: expected a f32 or f64 tensor, got ", dtype_name(logits.dtype()));
  }
  LOOM_CUDA_CHECK_LAUNCH("ce_kernel", "[", n, ", ", c, "]");
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p) {
  OnDevice on(logits, "cross_entropy backward");
  on.check(targets, "cross_entropy backward", "targets");
  on.check(row_scale, "cross_entropy backward", "row_scale");
  on.check(grad_logits, "cross_entropy backward", "grad_logits");
  check_args(logits, targets, "cross_entropy backward");
  LOOM_CHECK(grad_logits.is_contiguous() && grad_logits.shape() == logits.shape() &&
                 grad_logits.dtype() == logits.dtype(),
             "cross_entropy backward: grad_logits must be contiguous like the logits");
  LOOM_CHECK(row_scale.dim() == 1 && row_scale.size(0) == logits.size(0) && row_scale.dtype() == logits.dtype(),
             "cross_entropy backward: row_scale must be [N] of the logits' dtype, got ",
             shape_str(row_scale.shape()));
  const int64_t n = logits.size(0), c = logits.size(1);
  if (n == 0 || c == 0) return;
  const bool t64 = targets.dtype() == DType::i64;
  const unsigned grid = row_grid(n);
  const int threads = row_threads(c);
  switch (logits.dtype()) {
    case DType::f32:
      ce_backward_kernel<float><<<grid, threads, 0, on.stream>>>(
          static_cast<const float*>(logits.raw_data()), targets.raw_data(), t64, targets.stride(0),
          static_cast<const float*>(row_scale.raw_data()), row_scale.stride(0),
          static_cast<float*>(grad_logits.raw_data()), n, c, p.ignore_index, p.label_smoothing);
      break;
    case DType::f64:
      ce_backward_kernel<double><<<grid, threads, 0, on.stream>>>(
          static_cast<const double*>(logits.raw_data()), targets.raw_data(), t64, targets.stride(0),
          static_cast<const double*>(row_scale.raw_data()), row_scale.stride(0),
          static_cast<double*>(grad_logits.raw_data()), n, c, p.ignore_index, p.label_smoothing);
      break;
    default: LOOM_FAIL("cross_entropy backward: expected a f32 or f64 tensor, got ", dtype_name(logits.dtype()));
  }
  LOOM_CUDA_CHECK_LAUNCH("ce_backward_kernel", "[", n, ", ", c, "]");
}

}  // namespace loom::cuda
