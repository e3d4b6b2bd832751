// The fused linear entries of the CPU backend: the product through the
// backend's GEMM, then the bias (and GELU) applied in place while the output
// is written once, instead of one new tensor per add and activation. Half
// operands multiply in f32 and get the bias and GELU before their one
// rounding, as cuBLASLt's epilogues do.
// Floor: 2 * M * N * K FLOPs for the product; the epilogue reads and writes
// M * N values once more (twice with GELU, which also keeps its input).
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/matrix_views.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// y[r, :] += bias for every row of the contiguous f32/f64 matrix y.
void add_bias_rows(const Tensor& y, const Tensor& bias) {
  const int64_t rows = y.size(0), cols = y.size(1);
  dispatch_float(y.dtype(), "linear", [&]<class T>() {
    T* yp = ptr<T>(y);
    const T* bp = ptr<T>(bias);
    parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* row = yp + r * cols;
        for (int64_t c = 0; c < cols; ++c) row[c] += bp[c];
      }
    });
  });
}

}  // namespace

bool linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearEpilogue e, const Tensor& out,
            const Tensor& pre) {
  const DType t = out.dtype();
  if (t != DType::f32 && t != DType::f64 && !is_half(t)) return false;
  const bool gelu = e == LinearEpilogue::bias_gelu_tanh;
  // The product lands where the epilogue reads it: in f32 for halves, else
  // in pre (GELU's input) or out itself.
  const Tensor product = is_half(t) ? empty(out.shape(), DType::f32) : (gelu ? pre : out);
  if (is_half(t)) {
    gemm(as_batch(as_f32(x)), transposed_as_batch(as_f32(weight)), as_batch(product));
    add_bias_rows(product, as_f32(bias));
  } else {
    gemm(as_batch(x), transposed_as_batch(weight), as_batch(product));
    add_bias_rows(product, bias);
  }
  if (gelu) {
    const Tensor activated = is_half(t) ? empty(out.shape(), DType::f32) : out;
    unary(Unary::gelu_tanh, product, activated, {});
    if (is_half(t)) {
      copy(activated, out);
      copy(product, pre);
    }
  } else if (is_half(t)) {
    copy(product, out);
  }
  return true;
}

bool linear_weight_grad(const Tensor& grad, const Tensor& x, const Tensor& grad_w, const Tensor& grad_b) {
  // Half operands multiply in f32 into f32 gradients, as cuBLASLt's do: an
  // autocast product's f32 master weights get theirs unrounded.
  if (is_half(grad.dtype()) && grad_w.dtype() == DType::f32 && grad_b.dtype() == DType::f32)
    return linear_weight_grad(as_f32(grad), as_f32(x), grad_w, grad_b);
  if (grad.dtype() != DType::f32 && grad.dtype() != DType::f64) return false;
  const int64_t m = grad.size(0), n = grad.size(1);
  gemm(transposed_as_batch(grad), as_batch(x), as_batch(grad_w));
  reduce(Reduce::sum, grad, 1, m, n, grad_b.reshape({1, n}));
  return true;
}

}  // namespace loom::cpu
