// Batched matrix product through Eigen, mapping each operand in place when it
// is row- or column-major (a transposed view needs no copy).
// GCC 12 warns inside its own AVX-512 intrinsics as Eigen uses them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"

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

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    const T* ap = ptr<T>(a);
    const T* bp = ptr<T>(b);
    T* op = ptr<T>(out);
    for (int64_t i = 0; i < batch; ++i) {
      Eigen::Map<Mat<T>> c(op + i * m * n, m, n);
      if (k == 0) {
        c.setZero();
        continue;
      }
      auto lhs = map(ap + i * a.stride(0), m, k, a.stride(1), a.stride(2));
      auto rhs = map(bp + i * b.stride(0), k, n, b.stride(1), b.stride(2));
      c.noalias() = lhs * rhs;
    }
  });
}

}  // namespace loom::cpu
