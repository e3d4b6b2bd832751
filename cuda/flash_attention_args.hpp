// The tensor side of the flash-attention kernels, shared by the device
// entries (flash_attention.cu) and the host emulation (emulated_tiles.cpp):
// which calls the kernels take, the checks on their outputs, the kernel
// arguments, and the entries' bodies after the device checks. `stream` is the
// device's stream (or the emulator's); check(status, what) reports a failed
// launch.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "flash_backward_mma.cuh"
#include "flash_forward_mma.cuh"
#include "flash_forward_wgmma.cuh"
#include "kernels/backend.hpp"
#include "kernels/variants.hpp"
#include "loom/core/error.hpp"
#include "loom/ops/creation.hpp"

namespace loom::flash {
inline namespace LOOM_SIMT_ABI {

inline bool packed_for_kernels(const Tensor& t) {
  return !t.defined() || (t.is_contiguous() && reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0);
}

// Whether the kernels take q [BH, Lq, D], k, v [BH, Lk, D] and key_keep
// [BH, Lk] within `max_shared_bytes` of shared memory per block.
inline bool takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                  size_t max_shared_bytes) {
  const DType t = q.dtype();
  if ((t != DType::f32 && t != DType::bf16) || k.dtype() != t || v.dtype() != t) return false;
  if (q.dim() != 3 || k.dim() != 3 || v.dim() != 3 || k.shape() != v.shape() || q.size(0) != k.size(0) ||
      q.size(2) != k.size(2))
    return false;
  if (q.numel() == 0 || k.numel() == 0) return false;  // the composed op handles empty sequences
  if (q.size(0) > 65535 || q.size(1) > INT_MAX / 2 || k.size(1) > INT_MAX / 2) return false;  // grid.y, int rows
  if (key_keep.defined() && (key_keep.dtype() != DType::boolean || key_keep.numel() != k.size(0) * k.size(1)))
    return false;
  if (!packed_for_kernels(q) || !packed_for_kernels(k) || !packed_for_kernels(v) || !packed_for_kernels(key_keep))
    return false;
  const int d = static_cast<int>(q.size(2));
  return t == DType::f32 ? takes_head_dim<float>(d, max_shared_bytes)
                         : takes_head_dim<simt::bf16>(d, max_shared_bytes);
}

// The kernels fold the scale, as a float, into their exponentials and take
// the max of the raw scores, which needs it positive and finite (the op
// passes 1/sqrt(D) for none; a double too small or too large for a float
// composes instead).
inline bool takes_scale(const kernels::AttentionParams& p) {
  const float scale = static_cast<float>(p.scale);
  return scale > 0 && std::isfinite(scale);
}

inline void check_outputs(const Tensor& q, const Tensor& out, const Tensor& lse, const char* op) {
  LOOM_CHECK(out.dtype() == q.dtype() && out.shape() == q.shape() && packed_for_kernels(out), op,
             ": out must be a contiguous ", dtype_name(q.dtype()), " ", shape_str(q.shape()));
  LOOM_CHECK(lse.dtype() == DType::f32 && lse.numel() == q.size(0) * q.size(1) && lse.is_contiguous(), op,
             ": lse must be a contiguous f32 [", q.size(0), ", ", q.size(1), "]");
}

inline void check_gradients(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& grad_out,
                            const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v, const char* op) {
  LOOM_CHECK(grad_out.shape() == q.shape() && grad_out.dtype() == q.dtype() && packed_for_kernels(grad_out), op,
             ": grad_out must be a contiguous ", dtype_name(q.dtype()), " ", shape_str(q.shape()));
  LOOM_CHECK(grad_q.shape() == q.shape() && grad_k.shape() == k.shape() && grad_v.shape() == v.shape() &&
                 grad_q.dtype() == q.dtype() && grad_k.dtype() == q.dtype() && grad_v.dtype() == q.dtype() &&
                 packed_for_kernels(grad_q) && packed_for_kernels(grad_k) && packed_for_kernels(grad_v),
             op, ": gradients must be contiguous and shaped and typed like q, k, v");
}

inline Args forward_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                         const Tensor& lse, const kernels::AttentionParams& p) {
  Args a;
  a.q = q.raw_data();
  a.k = k.raw_data();
  a.v = v.raw_data();
  a.key_keep = key_keep.defined() ? static_cast<const uint8_t*>(key_keep.raw_data()) : nullptr;
  a.out = out.raw_data();
  a.lse = static_cast<float*>(lse.raw_data());
  a.bh = static_cast<int>(q.size(0));
  a.lq = static_cast<int>(q.size(1));
  a.lk = static_cast<int>(k.size(1));
  a.d = static_cast<int>(q.size(2));
  a.causal = p.causal;
  a.scale = static_cast<float>(p.scale);
  return a;
}

// `delta`: an f32 workspace of q.size(0) * q.size(1) elements on q's device.
inline Args backward_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                          const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q,
                          const Tensor& grad_k, const Tensor& grad_v, const Tensor& delta,
                          const kernels::AttentionParams& p) {
  Args a = forward_args(q, k, v, key_keep, out, lse, p);
  a.grad_out = grad_out.raw_data();
  a.grad_q = grad_q.raw_data();
  a.grad_k = grad_k.raw_data();
  a.grad_v = grad_v.raw_data();
  a.delta = static_cast<float*>(delta.raw_data());
  return a;
}

inline std::string describe(const Tensor& q, const Tensor& k) {
  return loom::detail::concat("q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", ", dtype_name(q.dtype()));
}

// Hands a failed launch to check(status, message), the message built only then.
template <class Status, class Check>
void report(Status status, const char* what, const Tensor& q, const Tensor& k, Check&& check) {
  if (status != Status{}) check(status, (std::string(what) + ": " + describe(q, k)).c_str());
}

// The wgmma forward LOOM_KERNEL_VARIANTS asks for (the overlapped one when
// both are named).
inline wgmma_forward::Mode wgmma_forward_mode() {
  if (kernels::variant_on("flash_forward_wgmma_overlap")) return wgmma_forward::Mode::overlapped;
  if (kernels::variant_on("flash_forward_wgmma")) return wgmma_forward::Mode::plain;
  return wgmma_forward::Mode::off;
}

// The forward entry: false (touching nothing) when the kernels do not take
// the call. `wgmma`: bf16 at head dims 64 and 128 runs the wgmma kernel
// (flash_forward_wgmma.cuh) unless off; the caller has checked that the
// device runs it.
template <class Check>
bool run_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                 const Tensor& lse, const kernels::AttentionParams& p, size_t max_shared_bytes, Stream stream,
                 Check&& check, wgmma_forward::Mode wgmma = wgmma_forward::Mode::off) {
  if (!takes(q, k, v, key_keep, max_shared_bytes) || !takes_scale(p)) return false;
  check_outputs(q, out, lse, "attention");
  const Args a = forward_args(q, k, v, key_keep, out, lse, p);
  const bool on_wgmma = wgmma != wgmma_forward::Mode::off && q.dtype() == DType::bf16 &&
                        wgmma_forward::takes_head_dim(a.d, max_shared_bytes);
  report(q.dtype() == DType::f32 ? launch_forward<float>(a, stream)
         : on_wgmma              ? wgmma_forward::launch_by_head_dim(a, stream, wgmma)
                                 : launch_forward<simt::bf16>(a, stream),
         on_wgmma ? "flash attention forward (wgmma)" : "flash attention forward", q, k, check);
  return true;
}

// The backward entry, for calls whose forward the kernels took.
template <class Check>
void run_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                  const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q, const Tensor& grad_k,
                  const Tensor& grad_v, const kernels::AttentionParams& p, size_t max_shared_bytes, Stream stream,
                  Check&& check) {
  const char* op = "attention backward";
  LOOM_CHECK(takes(q, k, v, key_keep, max_shared_bytes) && takes_scale(p), op,
             ": the forward kernel does not take these inputs (", describe(q, k), ", scale ", p.scale, ")");
  check_outputs(q, out, lse, op);
  check_gradients(q, k, v, grad_out, grad_q, grad_k, grad_v, op);
  Tensor delta = empty({q.size(0), q.size(1)}, TensorOptions(DType::f32).with_device(q.device()));
  const Args a = backward_args(q, k, v, key_keep, out, grad_out, lse, grad_q, grad_k, grad_v, delta, p);
  report(q.dtype() == DType::f32 ? launch_backward<float>(a, stream) : launch_backward<simt::bf16>(a, stream),
         "flash attention backward", q, k, check);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::flash
