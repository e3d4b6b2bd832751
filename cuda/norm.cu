// LayerNorm and RMSNorm over the rows of a contiguous [rows, cols] tensor.
//   xhat = (x - mean) * rstd,  y = xhat * w + b
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))   (LayerNorm)
//   dx = rstd * (dxhat - xhat * mean(dxhat * xhat))                 (RMSNorm)
// Floor: forward reads x (+ w, b) and writes y: ~2 * rows * cols * itemsize
// bytes, ~5 FLOPs per element; backward reads g, x and writes dx (3x), plus
// the column sums for dw, db. One block per row (two-pass mean/variance, sums
// in double as on the CPU); dw/db: one block per 32-column tile, its threads
// splitting the rows, combined in a fixed order (deterministic).
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

template <class T>
__global__ void norm_kernel(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t rows, int64_t cols,
                            double eps, bool rms) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* in = x + row * cols;
    double mu = 0;
    if (!rms) {
      double s = 0;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += static_cast<double>(in[j]);
      mu = block_sum(s) / static_cast<double>(cols);
    }
    double ss = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double d = static_cast<double>(in[j]) - mu;
      ss += d * d;
    }
    ss = block_sum(ss);
    const double r = 1.0 / sqrt(ss / static_cast<double>(cols) + eps);
    if (threadIdx.x == 0) {
      mean[row] = static_cast<T>(mu);
      rstd[row] = static_cast<T>(r);
    }
    T* o = out + row * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      T v = static_cast<T>((static_cast<double>(in[j]) - mu) * r);
      if (w) v *= w[j];
      if (b) v += b[j];
      o[j] = v;
    }
  }
}

template <class T>
__global__ void norm_backward_x_kernel(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                                       int64_t rows, int64_t cols, bool rms) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gr = g + row * cols;
    const T* xr = x + row * cols;
    const double mu = static_cast<double>(mean[row]), r = static_cast<double>(rstd[row]);
    double sum_d = 0, sum_dx = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double xhat = (static_cast<double>(xr[j]) - mu) * r;
      const double dxhat = w ? static_cast<double>(gr[j]) * static_cast<double>(w[j]) : static_cast<double>(gr[j]);
      sum_d += dxhat;
      sum_dx += dxhat * xhat;
    }
    sum_d = block_sum(sum_d);
    sum_dx = block_sum(sum_dx);
    const double mean_d = rms ? 0.0 : sum_d / static_cast<double>(cols);
    const double mean_dx = sum_dx / static_cast<double>(cols);
    T* d = dx + row * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double xhat = (static_cast<double>(xr[j]) - mu) * r;
      const double dxhat = w ? static_cast<double>(gr[j]) * static_cast<double>(w[j]) : static_cast<double>(gr[j]);
      d[j] = static_cast<T>(r * (dxhat - mean_d - xhat * mean_dx));
    }
  }
}

constexpr int kColTile = 32, kRowSplit = 16;

// dw[j] = sum_i g[i, j] * xhat[i, j], db[j] = sum_i g[i, j]
template <class T>
__global__ void norm_backward_wb_kernel(const T* g, const T* x, const T* mean, const T* rstd, T* dw, T* db,
                                        int64_t rows, int64_t cols) {
  __shared__ double sw[kRowSplit][kColTile];
  __shared__ double sb[kRowSplit][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t tile = blockIdx.x; tile * kColTile < cols; tile += gridDim.x) {
    const int64_t j = tile * kColTile + tx;
    double aw = 0, ab = 0;
    if (j < cols) {
      for (int64_t i = ty; i < rows; i += kRowSplit) {
        const double gv = static_cast<double>(g[i * cols + j]);
        const double xhat = (static_cast<double>(x[i * cols + j]) - static_cast<double>(mean[i])) *
                            static_cast<double>(rstd[i]);
        aw += gv * xhat;
        ab += gv;
      }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    for (int half = kRowSplit / 2; half > 0; half /= 2) {
      if (ty < half) {
        sw[ty][tx] += sw[ty + half][tx];
        sb[ty][tx] += sb[ty + half][tx];
      }
      __syncthreads();
    }
    if (ty == 0 && j < cols) {
      if (dw) dw[j] = static_cast<T>(sw[0][tx]);
      if (db) db[j] = static_cast<T>(sb[0][tx]);
    }
    __syncthreads();
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <class T>
T* mut_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

template <class T>
void launch_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out, const Tensor& mean,
                 const Tensor& rstd, const NormShape& s, cudaStream_t st) {
  norm_kernel<T><<<row_grid(s.rows), row_threads(s.cols), 0, st>>>(
      ptr_or_null<T>(x), ptr_or_null<T>(w), ptr_or_null<T>(b), mut_or_null<T>(out), mut_or_null<T>(mean),
      mut_or_null<T>(rstd), s.rows, s.cols, s.eps, s.rms);
  LOOM_CUDA_CHECK_LAUNCH("norm_kernel", "[", s.rows, ", ", s.cols, "]");
}

template <class T>
void launch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                          const Tensor& gx, const Tensor& gw, const Tensor& gb, const NormShape& s, cudaStream_t st) {
  if (gx.defined()) {
    norm_backward_x_kernel<T><<<row_grid(s.rows), row_threads(s.cols), 0, st>>>(
        ptr_or_null<T>(g), ptr_or_null<T>(x), ptr_or_null<T>(w), ptr_or_null<T>(mean), ptr_or_null<T>(rstd),
        mut_or_null<T>(gx), s.rows, s.cols, s.rms);
    LOOM_CUDA_CHECK_LAUNCH("norm_backward_x_kernel", "[", s.rows, ", ", s.cols, "]");
  }
  if (gw.defined() || gb.defined()) {
    const int64_t tiles = (s.cols + kColTile - 1) / kColTile;
    norm_backward_wb_kernel<T><<<static_cast<unsigned>(tiles < 65536 ? tiles : 65536), dim3(kColTile, kRowSplit), 0,
                                 st>>>(ptr_or_null<T>(g), ptr_or_null<T>(x), ptr_or_null<T>(mean),
                                       ptr_or_null<T>(rstd), mut_or_null<T>(gw), mut_or_null<T>(gb), s.rows, s.cols);
    LOOM_CUDA_CHECK_LAUNCH("norm_backward_wb_kernel", "[", s.rows, ", ", s.cols, "]");
  }
}

void check_rows(const Tensor& t, int64_t numel, const char* op, const char* arg) {
  if (!t.defined()) return;
  LOOM_CHECK(t.is_contiguous() && t.numel() == numel, op, ": '", arg, "' ", shape_str(t.shape()),
             " is not contiguous with ", numel, " elements");
}

}  // namespace

void norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const Tensor& mean,
          const Tensor& rstd, const NormShape& s) {
  const char* op = s.rms ? "rms_norm" : "layer_norm";
  OnDevice on(out, op);
  for (const Tensor* t : {&x, &mean, &rstd}) on.check(*t, op, "x/mean/rstd");
  if (weight.defined()) on.check(weight, op, "weight");
  if (bias.defined()) on.check(bias, op, "bias");
  check_rows(x, s.rows * s.cols, op, "x");
  check_rows(out, s.rows * s.cols, op, "out");
  check_rows(weight, s.cols, op, "weight");
  check_rows(bias, s.cols, op, "bias");
  if (s.rows == 0) return;
  LOOM_CHECK(s.cols > 0, op, ": empty rows");
  switch (x.dtype()) {
    case DType::f32: return launch_norm<float>(x, weight, bias, out, mean, rstd, s, on.stream);
    case DType::f64: return launch_norm<double>(x, weight, bias, out, mean, rstd, s, on.stream);
    default: LOOM_FAIL(op, ": expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
  }
}

void norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                   const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const NormShape& s) {
  const char* op = s.rms ? "rms_norm backward" : "layer_norm backward";
  OnDevice on(x, op);
  for (const Tensor* t : {&grad, &mean, &rstd}) on.check(*t, op, "grad/mean/rstd");
  for (const Tensor* t : {&weight, &grad_x, &grad_w, &grad_b})
    if (t->defined()) on.check(*t, op, "weight/grad_x/grad_w/grad_b");
  check_rows(grad, s.rows * s.cols, op, "grad");
  check_rows(x, s.rows * s.cols, op, "x");
  check_rows(grad_x, s.rows * s.cols, op, "grad_x");
  check_rows(weight, s.cols, op, "weight");
  check_rows(grad_w, s.cols, op, "grad_w");
  check_rows(grad_b, s.cols, op, "grad_b");
  if (s.rows == 0) {  // sums over no rows
    if (grad_w.defined()) fill(grad_w, 0.0);
    if (grad_b.defined()) fill(grad_b, 0.0);
    return;
  }
  switch (x.dtype()) {
    case DType::f32: return launch_norm_backward<float>(grad, x, weight, mean, rstd, grad_x, grad_w, grad_b, s, on.stream);
    case DType::f64:
      return launch_norm_backward<double>(grad, x, weight, mean, rstd, grad_x, grad_w, grad_b, s, on.stream);
    default: LOOM_FAIL(op, ": expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
  }
}

}  // namespace loom::cuda
