// Device-side helpers shared by the kernels in cuda/*.cu: the device checks,
// block reductions for the plain CUDA kernels, and (from elements.cuh)
// element types, strided offsets and launch shapes. Only included from .cu
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

// A grid-stride loop over [0, n).
#define LOOM_GRID_LOOP(i, n)                                                                     \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);         \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

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

// ---------------------------------------------------------------------------
// Block reductions (blockDim.x a multiple of 32, at most 1024). Every thread
// gets the result. Deterministic: fixed shapes, fixed order.
// ---------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T other = __shfl_down_sync(0xffffffffu, v, o);
    v = (other > v || other != other) && v == v ? other : v;  // NaN wins
  }
  return v;
}

template <class T, bool Max>
__device__ T block_reduce(T v) {
  __shared__ T buf[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // the previous call's readers are done with buf
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>((blockDim.x + 31) >> 5);
    T w = lane < warps ? buf[lane] : buf[0];  // pad with a value that changes neither sum (set below) nor max
    if (!Max && lane >= warps) w = T(0);
    w = Max ? warp_max(w) : warp_sum(w);
    if (lane == 0) buf[0] = w;
  }
  __syncthreads();
  return buf[0];
}

template <class T>
__device__ __forceinline__ T block_sum(T v) { return block_reduce<T, false>(v); }
template <class T>
__device__ __forceinline__ T block_max(T v) { return block_reduce<T, true>(v); }

// Threads for a block that walks one row of n elements.
inline int row_threads(int64_t n) { return n >= 2048 ? 512 : n >= 512 ? 256 : n >= 128 ? 128 : 32; }
inline unsigned row_grid(int64_t rows) { return static_cast<unsigned>(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }

}  // namespace loom::cuda
