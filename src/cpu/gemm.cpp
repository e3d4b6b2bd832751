// Batched matrix product C[i] = A[i] B[i] of the CPU backend. f32 on an
// AVX-512 or AVX2 + FMA build goes to the packed, blocked GEMM of
// gemm_f32.hpp; f64, and every type on other machines, goes through Eigen, mapping each operand in
// place when it is row- or column-major (a transposed view needs no copy).
// bf16 / f16 operands are widened to f32 and the product rounded once.

// GCC 12 warns inside its own AVX-512 intrinsics as Eigen uses them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include "cpu/gemm_f32.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using StridedMap = Eigen::Map<const Mat<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

// Row-major Eigen map of one [rows, cols] matrix with element strides (rs, cs).
template <class T>
StridedMap<T> map(const T* p, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return StridedMap<T>(p, rows, cols, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(rs, cs));
}

// Rows [r0, r0 + rows) of matrix i of a [B, R, C] operand, mapped in place.
template <class T>
StridedMap<T> matrix_rows(const Tensor& t, int64_t i, int64_t r0, int64_t rows) {
  return map(ptr<T>(t) + i * t.stride(0) + r0 * t.stride(1), rows, t.size(2), t.stride(1), t.stride(2));
}

#if defined(LOOM_GEMM_F32_PACKED)
gemm_f32::BatchedProduct packed_product(const Tensor& a, const Tensor& b, const Tensor& out) {
  gemm_f32::BatchedProduct p;
  p.a = {ptr<float>(a), a.size(1), a.size(2), a.stride(1), a.stride(2)};
  p.b = {ptr<float>(b), b.size(1), b.size(2), b.stride(1), b.stride(2)};
  p.a_batch_stride = a.stride(0);
  p.b_batch_stride = b.stride(0);
  p.batch = a.size(0);
  p.c = ptr<float>(out);
  return p;
}
#endif

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& out) {
  LOOM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "matmul: operand dtypes ", dtype_name(a.dtype()),
             " and ", dtype_name(b.dtype()), " for a ", dtype_name(out.dtype()), " product");
  if (is_half(out.dtype())) {
    // Half operands multiply in f32 and round once into out, as a GPU's
    // f32-accumulating half GEMM does. A broadcast operand (batch stride 0,
    // a weight) is widened once, not once per batch.
    const auto f32 = [](const Tensor& t) {
      const bool broadcast = t.size(0) > 1 && t.stride(0) == 0;
      const Tensor src = broadcast ? t.narrow(0, 0, 1) : t;
      const Tensor c = as_f32(src);
      return broadcast ? make_view(c, t.shape(), {0, c.stride(1), c.stride(2)}, 0) : c;
    };
    Tensor product = empty(out.shape(), DType::f32);
    gemm(f32(a), f32(b), product);
    copy(product, out);
    return;
  }
#if defined(LOOM_GEMM_F32_PACKED)
  if (a.dtype() == DType::f32) {
    gemm_f32::multiply_batched(packed_product(a, b, out));
    return;
  }
#endif
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    // Rows [r0, r1) of product i; Eigen itself runs single-threaded.
    auto product = [&](int64_t i, int64_t r0, int64_t r1) {
      Eigen::Map<Mat<T>> c(ptr<T>(out) + i * m * n + r0 * n, r1 - r0, n);
      if (k == 0) {
        c.setZero();
        return;
      }
      c.noalias() = matrix_rows<T>(a, i, r0, r1 - r0) * matrix_rows<T>(b, i, 0, k);
    };
    // Many products: whole products per thread. Few: split each by rows.
    const int64_t flops_per_row = 2 * n * std::max<int64_t>(k, 1);
    if (batch >= num_threads()) {
      parallel_for(0, batch, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, flops_per_row * m)),
                   [&](int64_t lo, int64_t hi) {
                     for (int64_t i = lo; i < hi; ++i) product(i, 0, m);
                   });
    } else {
      for (int64_t i = 0; i < batch; ++i)
        parallel_for(0, m, std::max<int64_t>(16, (1 << 20) / flops_per_row),
                     [&](int64_t lo, int64_t hi) { product(i, lo, hi); });
    }
  });
}

void gemm_batch_sum(const Tensor& a, const Tensor& b, const Tensor& out) {
  LOOM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype() && !is_half(out.dtype()),
             "gemm_batch_sum: operands ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()), " for a ",
             dtype_name(out.dtype()), " sum (f32 or f64 throughout)");
  LOOM_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 2 && a.size(0) == b.size(0) && a.size(2) == b.size(1) &&
                 out.size(0) == a.size(1) && out.size(1) == b.size(2) && out.is_contiguous(),
             "gemm_batch_sum: ", shape_str(a.shape()), " . ", shape_str(b.shape()), " summed over the batch into ",
             shape_str(out.shape()), " (needs [B, M, K] . [B, K, N] into a contiguous [M, N])");
#if defined(LOOM_GEMM_F32_PACKED)
  if (a.dtype() == DType::f32) {
    gemm_f32::multiply_summed(packed_product(a, b, out));
    return;
  }
#endif
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    // Rows [r0, r1) of the sum, each thread through the whole batch.
    parallel_for(0, m, std::max<int64_t>(16, (1 << 20) / std::max<int64_t>(1, 2 * n * k * batch)),
                 [&](int64_t r0, int64_t r1) {
                   Eigen::Map<Mat<T>> c(ptr<T>(out) + r0 * n, r1 - r0, n);
                   c.setZero();
                   for (int64_t i = 0; i < batch && k > 0; ++i)
                     c.noalias() += matrix_rows<T>(a, i, r0, r1 - r0) * matrix_rows<T>(b, i, 0, k);
                 });
  });
}

}  // namespace loom::cpu
