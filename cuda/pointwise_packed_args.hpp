// The tensor side of the packed pointwise kernels (pointwise_packed.cuh),
// shared by the device entries (elementwise.cu) and the emulator's tests:
// whether a call takes the packed path, and the launches. Each try_* returns
// false when the call does not qualify (the caller then takes the strided
// kernels). f32 and bf16 only: the dtypes of training.
#pragma once

#include <cstdint>

#include "loom/core/tensor.hpp"
#include "pointwise_packed.cuh"

namespace loom::pointwise {
inline namespace LOOM_SIMT_ABI {

inline bool aligned16(const Tensor& t) { return pack_aligned(t.raw_data()); }

// Dense, in out's order, 16-byte aligned.
inline bool dense_like(const Tensor& t, const Tensor& out) {
  return t.dtype() == out.dtype() && t.shape() == out.shape() && t.is_contiguous() && aligned16(t);
}

// One value seen at every position (all strides 0, e.g. a broadcast scalar).
inline bool broadcast_value(const Tensor& t) {
  for (int64_t s : t.strides())
    if (s != 0) return false;
  return true;
}

inline bool packed_dtype(const Tensor& out) {
  return (out.dtype() == DType::f32 || out.dtype() == DType::bf16) && out.is_contiguous() && aligned16(out);
}

inline unsigned packed_blocks(int64_t n, int pack) {
  const int64_t per_block = static_cast<int64_t>(kPackedThreads) * pack;
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks < 65536 ? blocks : 65536);
}

template <class T>
T* data_of(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// Calls f.template operator()<T>() with T the packed element type of `t`.
template <class F>
void with_packed_type(DType t, F&& f) {
  if (t == DType::f32)
    f.template operator()<float>();
  else
    f.template operator()<simt::bf16>();
}

template <class Check>
bool try_unary_packed(Unary op, const Tensor& x, const Tensor& out, const kernels::UnaryParams& p, Stream stream,
               Check&& check) {
  if (!packed_dtype(out) || !dense_like(x, out) || out.numel() == 0) return false;
  const int64_t n = out.numel();
  with_packed_type(out.dtype(), [&]<class T>() {
    const unsigned blocks = packed_blocks(n, kPack<T>);
    check(launch(Dim3(blocks), Dim3(kPackedThreads), 0, stream, unary_packed_kernel<T>, n, blocks, op, args_of(p),
                 data_of<const T>(x), data_of<T>(out)),
          "packed unary");
  });
  return true;
}

template <class Check>
bool try_unary_backward_packed(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                        const kernels::UnaryParams& p, Stream stream, Check&& check) {
  if (!packed_dtype(grad_in) || !dense_like(grad, grad_in) || !dense_like(x, grad_in) || !dense_like(y, grad_in) ||
      grad_in.numel() == 0)
    return false;
  const int64_t n = grad_in.numel();
  with_packed_type(grad_in.dtype(), [&]<class T>() {
    const unsigned blocks = packed_blocks(n, kPack<T>);
    check(launch(Dim3(blocks), Dim3(kPackedThreads), 0, stream, unary_backward_packed_kernel<T>, n, blocks, op,
                 args_of(p), data_of<const T>(grad), data_of<const T>(x), data_of<const T>(y), data_of<T>(grad_in)),
          "packed unary backward");
  });
  return true;
}

// a and b already broadcast to out's shape (as Backend::binary takes them).
template <class Check>
bool try_binary_packed(Binary op, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream, Check&& check) {
  if (!packed_dtype(out) || out.numel() == 0) return false;
  const bool a_value = broadcast_value(a), b_value = broadcast_value(b);
  if (a.dtype() != out.dtype() || b.dtype() != out.dtype()) return false;
  if ((!a_value && !dense_like(a, out)) || (!b_value && !dense_like(b, out))) return false;
  const int64_t n = out.numel();
  with_packed_type(out.dtype(), [&]<class T>() {
    const unsigned blocks = packed_blocks(n, kPack<T>);
    check(launch(Dim3(blocks), Dim3(kPackedThreads), 0, stream, binary_packed_kernel<T>, n, blocks, op,
                 data_of<const T>(a), a_value, data_of<const T>(b), b_value, data_of<T>(out)),
          "packed binary");
  });
  return true;
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::pointwise
