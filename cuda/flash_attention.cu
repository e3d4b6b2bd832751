// The fused attention entries of the CUDA table: device checks, then the
// launches of flash_forward_mma.cuh (flash_forward_wgmma.cuh under its
// variant) and flash_attention.cuh (their headers give the FLOP and byte
// floor).
// They take f32 and bf16 with head dims in whole 16-wide tiles that fit the
// device's shared memory, and decline the rest (the op composes those).
#include "flash_attention_args.hpp"
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

size_t max_shared_bytes(int device) {
  int bytes = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "device ", device);
  return static_cast<size_t>(bytes);
}

// The wgmma forward the variants ask for, where it runs: in a build with
// sm_90a code (LOOM_CUDA_WGMMA, from CMake's architecture list) on a 9.0
// device, the only kind that image runs on.
flash::wgmma_forward::Mode wgmma_forward_here(int device) {
  using flash::wgmma_forward::Mode;
#if defined(LOOM_CUDA_WGMMA)
  const Mode asked = flash::wgmma_forward_mode();
  if (asked == Mode::off) return Mode::off;
  int major = 0, minor = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "device ", device);
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "device ", device);
  return major == 9 && minor == 0 ? asked : Mode::off;
#else
  (void)device;
  return Mode::off;
#endif
}

}  // namespace

bool attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
               const Tensor& lse, const AttentionParams& p) {
  OnDevice on(q, "attention");
  for (const auto& [t, name] : {std::pair{&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}})
    on.check(*t, "attention", name);
  if (key_keep.defined()) on.check(key_keep, "attention", "key_keep");
  return flash::run_forward(q, k, v, key_keep, out, lse, p, max_shared_bytes(on.device.index), on.stream,
                            check_launch, wgmma_forward_here(on.device.index));
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
  flash::run_backward(q, k, v, key_keep, out, grad_out, lse, grad_q, grad_k, grad_v, p,
                      max_shared_bytes(on.device.index), on.stream, check_launch);
}

}  // namespace loom::cuda
