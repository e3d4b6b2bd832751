// The fused attention entries of the CUDA table: device checks, then the
// launches of flash_attention.cuh (its header gives the FLOP and byte floor).
// They take f32 and bf16 with head dims in whole 16-wide tiles that fit the
// device's shared memory, and decline the rest (the op composes those).
#include "flash_attention_args.hpp"
#include "kernels.hpp"
#include "loom/ops/creation.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

size_t max_shared_bytes(int device) {
  int bytes = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "device ", device);
  return static_cast<size_t>(bytes);
}

std::string describe(const Tensor& q, const Tensor& k) {
  return detail::concat("q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", ", dtype_name(q.dtype()));
}

}  // namespace

bool attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
               const Tensor& lse, const AttentionParams& p) {
  OnDevice on(q, "attention");
  on.check(k, "attention", "k");
  on.check(v, "attention", "v");
  if (key_keep.defined()) on.check(key_keep, "attention", "key_keep");
  if (!flash::takes(q, k, v, key_keep, max_shared_bytes(on.device.index))) return false;
  on.check(out, "attention", "out");
  on.check(lse, "attention", "lse");
  flash::check_outputs(q, out, lse, "attention");
  const flash::Args a = flash::forward_args(q, k, v, key_keep, out, lse, p);
  LOOM_CUDA_CHECK(q.dtype() == DType::f32 ? flash::launch_forward<float>(a, on.stream)
                                          : flash::launch_forward<simt::bf16>(a, on.stream),
                  "flash attention forward: ", describe(q, k));
  return true;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                        const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v, const AttentionParams& p) {
  const char* op = "attention backward";
  OnDevice on(q, op);
  for (const auto& [t, name] : {std::pair{&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}, {&grad_out, "grad_out"},
                                {&grad_q, "grad_q"}, {&grad_k, "grad_k"}, {&grad_v, "grad_v"}})
    on.check(*t, op, name);
  if (key_keep.defined()) on.check(key_keep, op, "key_keep");
  LOOM_CHECK(flash::takes(q, k, v, key_keep, max_shared_bytes(on.device.index)), op,
             ": the forward kernel does not take these inputs (", describe(q, k), ")");
  flash::check_outputs(q, out, lse, op);
  flash::check_gradients(q, k, v, grad_out, grad_q, grad_k, grad_v, op);
  Tensor delta = empty({q.size(0), q.size(1)}, TensorOptions(DType::f32).with_device(q.device()));
  const flash::Args a = flash::backward_args(q, k, v, key_keep, out, grad_out, lse, grad_q, grad_k, grad_v, delta, p);
  LOOM_CUDA_CHECK(q.dtype() == DType::f32 ? flash::launch_backward<float>(a, on.stream)
                                          : flash::launch_backward<simt::bf16>(a, on.stream),
                  "flash attention backward: ", describe(q, k));
}

}  // namespace loom::cuda
