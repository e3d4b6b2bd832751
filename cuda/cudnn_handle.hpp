// The CUDA backend's cuDNN context (builds with LOOM_WITH_CUDNN only): the
// checked-call macro and one handle per device, bound to the device's stream.
#pragma once

#if !(LOOM_WITH_CUDA && LOOM_WITH_CUDNN)
#error "cuda/cudnn_handle.hpp needs a build with LOOM_WITH_CUDA and LOOM_WITH_CUDNN"
#endif

#include <cudnn.h>

#include "loom/core/error.hpp"

// Throws loom::Error naming the failing call, the place, cuDNN's description
// of the status, and any context.
#define LOOM_CUDNN_CHECK(call, ...)                                                                       \
  do {                                                                                                    \
    const cudnnStatus_t loom_cudnn_st_ = (call);                                                          \
    if (loom_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                                           \
      LOOM_FAIL(#call, " at " __FILE__ ":", __LINE__, ": ", cudnnGetErrorString(loom_cudnn_st_), " ",     \
                ##__VA_ARGS__);                                                                           \
  } while (0)

namespace loom::cuda {

// The device's cuDNN handle, created on first use and bound to stream(device);
// never destroyed (as the streams and cuBLAS handles of runtime.cpp).
cudnnHandle_t cudnn(int device);

}  // namespace loom::cuda
