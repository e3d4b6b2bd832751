// The Backend's pointwise entries after their device checks, shared by the
// device (elementwise.cu) and the emulator's tests: the dtype checks (with
// the CPU's messages), the packed path where it applies
// (pointwise_packed_args.hpp), otherwise the strided kernels
// (pointwise_strided.cuh) for every dtype the CPU defines the op for.
// check(status, what) reports a failed launch.
#pragma once

#include <string>

#include "pointwise_packed_args.hpp"
#include "pointwise_strided.cuh"

namespace loom::pointwise {
inline namespace LOOM_SIMT_ABI {

using kernels::op_name;

inline bool integer_unary_ok(Unary op) {
  return op == Unary::neg || op == Unary::abs || op == Unary::relu || op == Unary::clamp;
}

// Calls f.template operator()<T>() with T the storage type of `t`: the
// floating types, plus i32/i64 with Integers and u8/bool with Bytes (chosen
// at compile time, so no kernel is built for a type the op lacks); otherwise
// fail_no_kernel(op, "<what>dtype ...").
template <bool Integers, bool Bytes, class F>
void with_storage_type(DType t, const char* op, const char* what, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<Bf16>();
    case DType::f16: return f.template operator()<Half>();
    case DType::i32:
      if constexpr (Integers) return f.template operator()<int32_t>();
      break;
    case DType::i64:
      if constexpr (Integers) return f.template operator()<int64_t>();
      break;
    case DType::u8:
      if constexpr (Bytes) return f.template operator()<uint8_t>();
      break;
    case DType::boolean:
      if constexpr (Bytes) return f.template operator()<bool>();
      break;
  }
  fail_no_kernel(op, std::string(what) + "dtype " + dtype_name(t));
}

template <class Check>
void run_unary(Unary op, const Tensor& x, const Tensor& out, const kernels::UnaryParams& p, Stream stream,
               Check&& check) {
  const char* name = op_name(op);
  LOOM_CHECK(x.dtype() == out.dtype(), name, ": dtype ", dtype_name(x.dtype()), " -> ", dtype_name(out.dtype()));
  const DType t = x.dtype();
  if (!is_floating(t)) {
    LOOM_CHECK(t != DType::boolean && t != DType::u8, name, ": not defined for dtype ", dtype_name(t));
    LOOM_CHECK(integer_unary_ok(op), name, ": expected a floating tensor, got ", dtype_name(t));
  }
  const int64_t n = out.numel();
  if (n == 0 || try_unary_packed(op, x, out, p, stream, check)) return;
  const auto ix = make_indexer<2>(out.shape(), {out.strides(), x.strides()}, name);
  with_storage_type<true, false>(t, name, "", [&]<class T>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, unary_kernel<T>, n, ix, op, args_of(p),
                 data_of<const T>(x), data_of<T>(out)),
          name);
  });
}

template <class Check>
void run_unary_backward(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                        const kernels::UnaryParams& p, Stream stream, Check&& check) {
  const char* name = op_name(op);
  const DType t = x.dtype();
  LOOM_CHECK(is_floating(t), name, " backward: expected a floating tensor, got ", dtype_name(t));
  LOOM_CHECK(grad.dtype() == t && y.dtype() == t && grad_in.dtype() == t, name, " backward: dtypes differ (grad ",
             dtype_name(grad.dtype()), ", x ", dtype_name(t), ")");
  const int64_t n = grad_in.numel();
  if (n == 0 || try_unary_backward_packed(op, grad, x, y, grad_in, p, stream, check)) return;
  const auto ix =
      make_indexer<4>(grad_in.shape(), {grad_in.strides(), grad.strides(), x.strides(), y.strides()}, name);
  with_storage_type<false, false>(t, name, "backward, ", [&]<class T>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, unary_backward_kernel<T>, n, ix, op, args_of(p),
                 data_of<const T>(grad), data_of<const T>(x), data_of<const T>(y), data_of<T>(grad_in)),
          name);
  });
}

// a and b already broadcast (expanded) to out's shape.
template <class Check>
void run_binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream, Check&& check) {
  const char* name = op_name(op);
  const DType t = a.dtype();
  LOOM_CHECK(b.dtype() == t && out.dtype() == t, name, ": dtypes ", dtype_name(t), ", ", dtype_name(b.dtype()),
             " -> ", dtype_name(out.dtype()));
  LOOM_CHECK(t != DType::boolean, "arithmetic on bool tensors is not defined");
  if (!is_floating(t))
    LOOM_CHECK(op != Binary::div && op != Binary::pow, name, ": expected floating tensors, got ", dtype_name(t));
  const int64_t n = out.numel();
  if (n == 0 || try_binary_packed(op, a, b, out, stream, check)) return;
  const auto ix = make_indexer<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, name);
  with_storage_type<true, false>(t, name, "", [&]<class T>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, binary_kernel<T>, n, ix, op, data_of<const T>(a),
                 data_of<const T>(b), data_of<T>(out)),
          name);
  });
}

template <class Check>
void run_compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream, Check&& check) {
  const DType t = a.dtype();
  LOOM_CHECK(b.dtype() == t, "compare: dtype mismatch, ", dtype_name(t), " vs ", dtype_name(b.dtype()));
  LOOM_CHECK(out.dtype() == DType::boolean, "compare: output must be bool, got ", dtype_name(out.dtype()));
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto ix = make_indexer<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, "compare");
  with_storage_type<true, true>(t, "compare", "", [&]<class T>() {
    check(launch(Dim3(grid_for(n)), Dim3(kThreads), 0, stream, compare_kernel<T>, n, ix, op, data_of<const T>(a),
                 data_of<const T>(b), data_of<bool>(out)),
          "compare");
  });
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::pointwise
