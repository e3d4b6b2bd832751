// The CUDA runtime as loom exposes it: is there a device, moving tensors
// between host and device, and the caching allocator's accounting.
//
// Every function here exists in every build. In a build without CUDA (or on a
// machine without a device) cuda_available() is false, cuda_device_count() is
// 0, and anything that needs a device throws loom::Error saying why, unless a
// cuda::HostEmulation stands in for the devices (below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "loom/core/device.hpp"
#include "loom/core/tensor.hpp"

namespace loom {

// cuda:index.
constexpr Device cuda_device(int index = 0) { return Device(DeviceType::CUDA, index); }

// True when this build has the CUDA backend and at least one device answers.
bool cuda_available();
// Number of visible devices; 0 without CUDA.
int cuda_device_count();
// Why cuda_available() is false ("" when it is true), e.g. "this build of loom
// has no CUDA backend" or "cudaGetDeviceCount: no CUDA-capable device is detected".
std::string cuda_unavailable_reason();

// A copy of t on `device` with t's shape and dtype (contiguous), or t itself
// when it is already there. Differentiable: the gradient flows back to t's
// device.
Tensor to_device(const Tensor& t, Device device);

namespace cuda {

// true when this build of loom has the CUDA backend compiled in.
bool built_with_cuda();

// The caching allocator of one device. Freed blocks go to per-size-class free
// lists and are reused; the driver (cudaMalloc) is asked only when no cached
// block of the class is free.
struct MemoryStats {
  size_t allocated_bytes = 0;       // held by live tensors (size-class rounded)
  size_t peak_allocated_bytes = 0;  // max of allocated_bytes since the last reset
  size_t reserved_bytes = 0;        // held from the driver: allocated + cached
  size_t peak_reserved_bytes = 0;
  size_t requested_bytes = 0;       // held by live tensors, as asked for
  uint64_t allocations = 0;         // allocate() calls
  uint64_t cache_hits = 0;          // ... served from a free list
  uint64_t device_mallocs = 0;      // cudaMalloc calls
  uint64_t device_frees = 0;        // cudaFree calls
};
MemoryStats memory_stats(int device = 0);
// Sets the peaks to the current values (counters are kept).
void reset_peak_memory_stats(int device = 0);
// Returns every cached (free) block to the driver; live tensors keep theirs.
void empty_cache(int device = 0);
// Waits for all work loom queued on the device.
void synchronize(int device = 0);
// "NVIDIA H200 (sm_90, 139 GiB)" and the like; throws without a device.
std::string device_name(int device = 0);
// Debugging aid (the CUDA tests turn it on): every block the allocator hands
// out is first filled with 0xFF bytes, NaN in every floating dtype (-1 in the
// integer ones), so an output element a kernel forgets to write shows up.
void set_poison_allocations(bool on);

// Device placement without a GPU. While a HostEmulation is alive, cuda:0 ..
// cuda:N-1 are stand-ins: their memory is host memory and their kernels are
// the CPU's, behind the same guard as on a GPU (every kernel entry refuses
// tensors from another device). cuda_available() is true, to_device and
// Module::to work, and a computation that leaks a CPU tensor into device work
// (or a device tensor into CPU work) fails with the error it gives on a real
// device. It tests where tensors live, not the CUDA kernels; results are the
// CPU's bit for bit. It takes precedence over real devices while alive, one
// emulation at a time; its tensors may outlive it (they free host memory).
// memory_stats and the other allocator calls still speak of real devices.
//
// With EmulatedKernels::cpu_and_tiles the CUDA backend's own hand-written
// simt kernels (flash attention, norms, softmax, cross-entropy, the
// multi-tensor optimizer) also run, compiled for the host and executed on a
// SIMT emulator (one OS thread per CUDA thread: slow, for tests). Ops then
// take their fused paths as on a GPU, and results match the CPU up to
// rounding instead of bit for bit.
enum class EmulatedKernels { cpu, cpu_and_tiles };
class HostEmulation {
 public:
  explicit HostEmulation(int devices = 1, EmulatedKernels kernels = EmulatedKernels::cpu);
  ~HostEmulation();
  HostEmulation(const HostEmulation&) = delete;
  HostEmulation& operator=(const HostEmulation&) = delete;
};
// Number of emulated devices; 0 when no HostEmulation is alive.
int host_emulated_devices();
// True while the live emulation runs the tile kernels (EmulatedKernels::cpu_and_tiles).
bool host_emulation_runs_tiles();

}  // namespace cuda
}  // namespace loom
