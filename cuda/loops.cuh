// What the entries in cuda/*.cu share: the device checks (OnDevice) and,
// from elements.cuh, element types, strided offsets and launch shapes. The
// kernels themselves live in the simt headers (*.cuh). Only included from .cu
// files.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "elements.cuh"
#include "kernels/backend.hpp"
#include "runtime.hpp"

namespace loom::cuda {

using kernels::Backend;

// Element types, the strided Indexer and launch shapes: elements.cuh (shared
// with the simt kernels and the emulator).
using namespace strided;

// How the entries report a failed kernel launch to the shared launch code
// (the *_args.hpp headers): as loom::Error with CUDA's reason.
inline void check_launch(cudaError_t status, const char* what) { LOOM_CUDA_CHECK(status, what); }

// Device of the first operand, checked for the others; makes it current.
struct OnDevice {
  Device device;
  DeviceGuard guard;
  cudaStream_t stream;
  explicit OnDevice(const Tensor& first, const char* op)
      : device(first.device()), guard(checked(first, op)), stream(cuda::stream(first.device().index)) {}
  void check(const Tensor& t, const char* op, const char* arg) const { check_on_device(t, device, op, arg); }

 private:
  static int checked(const Tensor& t, const char* op) {
    LOOM_CHECK(t.defined() && t.device().is_cuda(), op, ": expected a CUDA tensor, got one on ",
               t.defined() ? t.device().str() : std::string("(undefined)"));
    return t.device().index;
  }
};

}  // namespace loom::cuda
