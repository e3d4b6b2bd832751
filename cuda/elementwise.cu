// Pointwise kernels: unary ops and their derivatives, binary ops, comparisons,
// on any strides through the indexer (loops.cuh). Dense, aligned f32 and
// bf16 operands take the 16-byte packed kernels of pointwise_packed.cuh
// instead; the per-element arithmetic of both is pointwise_math.cuh.
// Floor: memory-bound. unary moves numel * 2 * itemsize bytes (backward 3-4x),
// binary and compare 3 operands per element; FLOPs are O(1) per element
// (a few tens for gelu/silu/tanh). One kernel per dtype; the op is a runtime
// switch that is uniform across the grid, so it costs no divergence.
// Halves compute in float, as on the CPU.
#include "kernels.hpp"
#include "loops.cuh"
#include "pointwise_math.cuh"
#include "pointwise_packed_args.hpp"

namespace loom::cuda {

namespace {

using pointwise::apply_binary;
using pointwise::apply_compare;
using pointwise::apply_unary;
using pointwise::args_of;
using pointwise::unary_derivative;
using pointwise::UnaryArgs;

void check_launch(cudaError_t status, const char* what) { LOOM_CUDA_CHECK(status, what); }

// ---- kernels ----

template <class T>
__global__ void unary_kernel(int64_t n, Indexer<2> ix, Unary op, UnaryArgs a, const T* x, T* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[off[0]] = from_compute<T>(apply_unary(op, to_compute(x[off[1]]), a));
  }
}

template <class T>
__global__ void unary_backward_kernel(int64_t n, Indexer<4> ix, Unary op, UnaryArgs a, const T* g, const T* x,
                                      const T* y, T* out) {
  using C = compute_t<T>;
  LOOM_GRID_LOOP(i, n) {
    int64_t off[4];
    ix.offsets(i, off);
    const C gv = to_compute(g[off[1]]);
    out[off[0]] = from_compute<T>(gv * unary_derivative(op, to_compute(x[off[2]]), to_compute(y[off[3]]), a));
  }
}

template <class T>
__global__ void binary_kernel(int64_t n, Indexer<3> ix, Binary op, const T* a, const T* b, T* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = from_compute<T>(apply_binary(op, to_compute(a[off[1]]), to_compute(b[off[2]])));
  }
}

template <class T>
__global__ void compare_kernel(int64_t n, Indexer<3> ix, Compare op, const T* a, const T* b, bool* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = apply_compare(op, to_compute(a[off[1]]), to_compute(b[off[2]]));
  }
}

// ---- host side ----

const char* unary_name(Unary op) {
  static const char* names[] = {"neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu",
                                "gelu", "gelu", "silu", "clamp", "pow"};
  return names[static_cast<int>(op)];
}

const char* binary_name(Binary op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return names[static_cast<int>(op)];
}

bool integer_unary_ok(Unary op) {
  return op == Unary::neg || op == Unary::abs || op == Unary::relu || op == Unary::clamp;
}

template <class T>
void launch_unary(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix = make_indexer<2>(out.shape(), {out.strides(), x.strides()}, unary_name(op));
  unary_kernel<T><<<grid_for(n), kThreads, 0, s>>>(n, ix, op, args_of(p), static_cast<const T*>(x.raw_data()),
                                                   static_cast<T*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("unary_kernel", unary_name(op), " ", dtype_name(x.dtype()), " ", shape_str(out.shape()));
}

template <class T>
void launch_unary_backward(Unary op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& out,
                           const UnaryParams& p, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix =
      make_indexer<4>(out.shape(), {out.strides(), g.strides(), x.strides(), y.strides()}, unary_name(op));
  unary_backward_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
      n, ix, op, args_of(p), static_cast<const T*>(g.raw_data()), static_cast<const T*>(x.raw_data()),
      static_cast<const T*>(y.raw_data()), static_cast<T*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("unary_backward_kernel", unary_name(op), " ", dtype_name(x.dtype()), " ",
                         shape_str(out.shape()));
}

template <class T>
void launch_binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix = make_indexer<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, binary_name(op));
  binary_kernel<T><<<grid_for(n), kThreads, 0, s>>>(n, ix, op, static_cast<const T*>(a.raw_data()),
                                                    static_cast<const T*>(b.raw_data()), static_cast<T*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("binary_kernel", binary_name(op), " ", dtype_name(a.dtype()), " ", shape_str(out.shape()));
}

template <class T>
void launch_compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix = make_indexer<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, "compare");
  compare_kernel<T><<<grid_for(n), kThreads, 0, s>>>(n, ix, op, static_cast<const T*>(a.raw_data()),
                                                     static_cast<const T*>(b.raw_data()),
                                                     static_cast<bool*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("compare_kernel", dtype_name(a.dtype()), " ", shape_str(out.shape()));
}

}  // namespace

void unary(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  OnDevice on(out, unary_name(op));
  on.check(x, unary_name(op), "x");
  LOOM_CHECK(x.dtype() == out.dtype(), unary_name(op), ": dtype ", dtype_name(x.dtype()), " -> ",
             dtype_name(out.dtype()));
  const DType t = x.dtype();
  if (!is_floating(t)) {
    LOOM_CHECK(t != DType::boolean && t != DType::u8, unary_name(op), ": not defined for dtype ", dtype_name(t));
    LOOM_CHECK(integer_unary_ok(op), unary_name(op), ": expected a floating tensor, got ", dtype_name(t));
  }
  if (out.numel() == 0) return;
  if (pointwise::run_unary(op, x, out, p, on.stream, check_launch)) return;
  switch (t) {
    case DType::f32: return launch_unary<float>(op, x, out, p, on.stream);
    case DType::f64: return launch_unary<double>(op, x, out, p, on.stream);
    case DType::bf16: return launch_unary<Bf16>(op, x, out, p, on.stream);
    case DType::f16: return launch_unary<Half>(op, x, out, p, on.stream);
    case DType::i32: return launch_unary<int32_t>(op, x, out, p, on.stream);
    case DType::i64: return launch_unary<int64_t>(op, x, out, p, on.stream);
    default: no_kernel(unary_name(op), std::string("dtype ") + dtype_name(t));
  }
}

void unary_backward(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                    const UnaryParams& p) {
  OnDevice on(grad_in, unary_name(op));
  on.check(grad, unary_name(op), "grad");
  on.check(x, unary_name(op), "x");
  on.check(y, unary_name(op), "y");
  const DType t = x.dtype();
  LOOM_CHECK(is_floating(t), unary_name(op), " backward: expected a floating tensor, got ", dtype_name(t));
  LOOM_CHECK(grad.dtype() == t && y.dtype() == t && grad_in.dtype() == t, unary_name(op),
             " backward: dtypes differ (grad ", dtype_name(grad.dtype()), ", x ", dtype_name(t), ")");
  if (grad_in.numel() == 0) return;
  if (pointwise::run_unary_backward(op, grad, x, y, grad_in, p, on.stream, check_launch)) return;
  switch (t) {
    case DType::f32: return launch_unary_backward<float>(op, grad, x, y, grad_in, p, on.stream);
    case DType::f64: return launch_unary_backward<double>(op, grad, x, y, grad_in, p, on.stream);
    case DType::bf16: return launch_unary_backward<Bf16>(op, grad, x, y, grad_in, p, on.stream);
    case DType::f16: return launch_unary_backward<Half>(op, grad, x, y, grad_in, p, on.stream);
    default: no_kernel(unary_name(op), std::string("backward, dtype ") + dtype_name(t));
  }
}

void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  OnDevice on(out, binary_name(op));
  on.check(a, binary_name(op), "a");
  on.check(b, binary_name(op), "b");
  const DType t = a.dtype();
  LOOM_CHECK(b.dtype() == t && out.dtype() == t, binary_name(op), ": dtypes ", dtype_name(t), ", ",
             dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
  LOOM_CHECK(t != DType::boolean, "arithmetic on bool tensors is not defined");
  if (!is_floating(t))
    LOOM_CHECK(op != Binary::div && op != Binary::pow, binary_name(op), ": expected floating tensors, got ",
               dtype_name(t));
  if (out.numel() == 0) return;
  if (pointwise::run_binary(op, a, b, out, on.stream, check_launch)) return;
  switch (t) {
    case DType::f32: return launch_binary<float>(op, a, b, out, on.stream);
    case DType::f64: return launch_binary<double>(op, a, b, out, on.stream);
    case DType::bf16: return launch_binary<Bf16>(op, a, b, out, on.stream);
    case DType::f16: return launch_binary<Half>(op, a, b, out, on.stream);
    case DType::i32: return launch_binary<int32_t>(op, a, b, out, on.stream);
    case DType::i64: return launch_binary<int64_t>(op, a, b, out, on.stream);
    default: no_kernel(binary_name(op), std::string("dtype ") + dtype_name(t));
  }
}

void compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out) {
  OnDevice on(out, "compare");
  on.check(a, "compare", "a");
  on.check(b, "compare", "b");
  const DType t = a.dtype();
  LOOM_CHECK(b.dtype() == t, "compare: dtype mismatch, ", dtype_name(t), " vs ", dtype_name(b.dtype()));
  LOOM_CHECK(out.dtype() == DType::boolean, "compare: output must be bool, got ", dtype_name(out.dtype()));
  if (out.numel() == 0) return;
  switch (t) {
    case DType::f32: return launch_compare<float>(op, a, b, out, on.stream);
    case DType::f64: return launch_compare<double>(op, a, b, out, on.stream);
    case DType::bf16: return launch_compare<Bf16>(op, a, b, out, on.stream);
    case DType::f16: return launch_compare<Half>(op, a, b, out, on.stream);
    case DType::i32: return launch_compare<int32_t>(op, a, b, out, on.stream);
    case DType::i64: return launch_compare<int64_t>(op, a, b, out, on.stream);
    case DType::u8: return launch_compare<uint8_t>(op, a, b, out, on.stream);
    case DType::boolean: return launch_compare<bool>(op, a, b, out, on.stream);
  }
}

}  // namespace loom::cuda
