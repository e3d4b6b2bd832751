// Batched matrix product through cuBLAS (cublasGemmStridedBatchedEx).
// Floor: 2 * B * M * N * K FLOPs; reads (M*K + K*N) * B and writes M*N*B
// elements. fp32 runs with fp32 compute (CUBLAS_COMPUTE_32F: no TF32), f64
// with f64, bf16 and f16 on the tensor cores with fp32 accumulation
// (CUBLAS_COMPUTE_32F) and one rounding of the result. An operand that is row- or column-major in each matrix (any batch
// stride, 0 for broadcast) is passed as it is; any other layout is copied
// contiguous first.
#if LOOM_WITH_CUDA

#include <algorithm>
#include <climits>

#include "kernels.hpp"
#include "runtime.hpp"

namespace loom::cuda {

namespace {

// A row-major [rows, cols] matrix with element strides (rs, cs), as cuBLAS
// (column-major) sees it: the [cols, rows] matrix with leading dim rs when
// cs == 1 (transposed = false), or the [rows, cols] one with leading dim cs
// when rs == 1 (transposed = true).
struct Layout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 0;
};

Layout layout_of(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  // A size-1 dim's stride is free: pick the one that makes the layout dense.
  if (cols == 1) cs = 1;
  if (rows == 1) rs = std::max<int64_t>(cols, 1);
  if (cs == 1 && rs >= std::max<int64_t>(cols, 1)) return {true, false, rs};
  if (rs == 1 && cs >= std::max<int64_t>(rows, 1)) return {true, true, cs};
  return {};
}

// t as [B, rows, cols] with a usable layout (a contiguous copy if needed).
Tensor usable(const Tensor& t, Layout& l) {
  l = layout_of(t.size(1), t.size(2), t.stride(1), t.stride(2));
  if (l.ok) return t;
  Tensor c = empty(t.shape(), TensorOptions(t.dtype()).with_device(t.device()));
  cuda::copy(t, c);
  l = layout_of(c.size(1), c.size(2), c.stride(1), c.stride(2));
  return c;
}

int as_int(int64_t v, const char* what) {
  LOOM_CHECK(v >= 0 && v <= INT_MAX, "matmul: ", what, " = ", v, " does not fit cuBLAS's int arguments");
  return static_cast<int>(v);
}

}  // namespace

void gemm(const Tensor& a_in, const Tensor& b_in, const Tensor& out) {
  LOOM_CHECK(out.defined() && out.device().is_cuda(), "matmul: expected a CUDA output");
  const Device dev = out.device();
  check_on_device(a_in, dev, "matmul", "a");
  check_on_device(b_in, dev, "matmul", "b");
  LOOM_CHECK(a_in.dim() == 3 && b_in.dim() == 3 && out.dim() == 3, "matmul: expected 3-d operands");
  const int64_t batch = a_in.size(0), m = a_in.size(1), k = a_in.size(2), n = b_in.size(2);
  LOOM_CHECK(b_in.size(0) == batch && b_in.size(1) == k && out.size(0) == batch && out.size(1) == m &&
                 out.size(2) == n,
             "matmul: shapes ", shape_str(a_in.shape()), " x ", shape_str(b_in.shape()), " -> ",
             shape_str(out.shape()));
  LOOM_CHECK(out.is_contiguous(), "matmul: output must be contiguous");
  const DType t = a_in.dtype();
  LOOM_CHECK(b_in.dtype() == t && out.dtype() == t, "matmul: dtype mismatch");
  if (t != DType::f32 && t != DType::f64 && !is_half(t)) no_kernel("matmul", std::string("dtype ") + dtype_name(t));
  if (batch == 0 || m == 0 || n == 0) return;
  DeviceGuard guard(dev.index);
  cudaStream_t s = stream(dev.index);
  if (k == 0) {
    LOOM_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, static_cast<size_t>(out.numel()) * itemsize(t), s));
    return;
  }
  Layout la, lb;
  const Tensor a = usable(a_in, la);
  const Tensor b = usable(b_in, lb);
  // out (row-major [M, N]) is column-major [N, M]: out^T = b^T . a^T.
  const cublasOperation_t op_b = lb.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = la.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int mm = as_int(n, "N"), nn = as_int(m, "M"), kk = as_int(k, "K");
  const int lda = as_int(lb.ld, "ld(b)"), ldb = as_int(la.ld, "ld(a)"), ldc = as_int(n, "N");
  const int count = as_int(batch, "batch");
  const long long stride_b = batch == 1 ? 0 : b.stride(0), stride_a = batch == 1 ? 0 : a.stride(0);
  const long long stride_c = m * n;
  cublasHandle_t h = cublas(dev.index);
  const cudaDataType_t type = t == DType::f64    ? CUDA_R_64F
                              : t == DType::bf16 ? CUDA_R_16BF
                              : t == DType::f16  ? CUDA_R_16F
                                                 : CUDA_R_32F;
  // alpha and beta in the compute type: double for f64, float otherwise.
  const double alpha64 = 1.0, beta64 = 0.0;
  const float alpha32 = 1.0f, beta32 = 0.0f;
  const bool f64 = t == DType::f64;
  LOOM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op_b, op_a, mm, nn, kk, f64 ? static_cast<const void*>(&alpha64) : &alpha32,
                                               b.raw_data(), type, lda, stride_b, a.raw_data(), type, ldb, stride_a,
                                               f64 ? static_cast<const void*>(&beta64) : &beta32, out.raw_data(), type,
                                               ldc, stride_c, count, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
                                               CUBLAS_GEMM_DEFAULT),
                    dtype_name(t), " a ", shape_str(a.shape()), " strides ", shape_str(a.strides()), ", b ",
                    shape_str(b.shape()), " strides ", shape_str(b.strides()));
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA
