// Internal to the CUDA backend (builds with LOOM_WITH_CUDA only): error
// checks, the per-device stream and cuBLAS handle, and device checks that the
// kernel entry points run before touching memory.
//
// One stream per device, created on first use (non-blocking). All of loom's
// work on a device is queued on it, so a cached block freed by the allocator
// and handed out again is only touched by work queued after the work that
// used it; device-to-host copies synchronise the stream before returning.
#pragma once

#if !LOOM_WITH_CUDA
#error "cuda/runtime.hpp needs a build with LOOM_WITH_CUDA"
#endif

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"

namespace loom::cuda {

// Throw loom::Error naming the failing call (its source text, arguments
// included), the place, the error's name and description, and any context.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line,
                                   const std::string& context);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line,
                                     const std::string& context);

// The device's stream (created on first use).
cudaStream_t stream(int device);
// The device's cuBLAS handle, bound to stream(device); default math (no TF32
// for fp32: cuda/gemm.cpp asks for CUBLAS_COMPUTE_32F).
cublasHandle_t cublas(int device);
// The device's cuBLASLt handle and its workspace (kCublasLtWorkspaceBytes,
// allocated on first use; one stream per device, so one workspace serves
// every call in order).
constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;
cublasLtHandle_t cublaslt(int device);
void* cublaslt_workspace(int device);

// Makes `device` current for the scope, restoring the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Queues a copy of `bytes` from host memory to device memory on the device's
// stream through a pinned staging block (pinned_staging.cpp) and returns
// without waiting for it; `host_src` may be freed once this returns. The
// caller has made `device` current.
void upload_async(void* device_dst, const void* host_src, size_t bytes, int device);

// Throws unless t is undefined (when allowed) or lives on `device`.
void check_on_device(const Tensor& t, Device device, const char* op, const char* arg);

}  // namespace loom::cuda

// LOOM_CUDA_CHECK(cudaMalloc(&p, n), "bytes=", n): throws loom::Error with
// the call's text, the optional context parts and the CUDA error.
#define LOOM_CUDA_CHECK(call, ...)                                                                          \
  do {                                                                                                      \
    const cudaError_t loom_cuda_err_ = (call);                                                              \
    if (loom_cuda_err_ != cudaSuccess)                                                                      \
      ::loom::cuda::throw_cuda_error(loom_cuda_err_, #call, __FILE__, __LINE__,                             \
                                     ::loom::detail::concat("" __VA_OPT__(, ) __VA_ARGS__));                \
  } while (0)

#define LOOM_CUBLAS_CHECK(call, ...)                                                                        \
  do {                                                                                                      \
    const cublasStatus_t loom_cublas_st_ = (call);                                                          \
    if (loom_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                           \
      ::loom::cuda::throw_cublas_error(loom_cublas_st_, #call, __FILE__, __LINE__,                          \
                                       ::loom::detail::concat("" __VA_OPT__(, ) __VA_ARGS__));              \
  } while (0)

// After a kernel launch: reports a bad launch configuration (and any earlier
// asynchronous error) naming the kernel and its context.
#define LOOM_CUDA_CHECK_LAUNCH(kernel, ...) LOOM_CUDA_CHECK(cudaGetLastError(), "launch of " kernel __VA_OPT__(, ) __VA_ARGS__)
