// The device side of simt.cuh that is not a template: the per-kernel shared
// memory limits.
#include <map>
#include <mutex>
#include <utility>

#include "simt.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

cudaError_t allow_shared_bytes(const void* kernel, size_t bytes) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, size_t> allowed;  // (kernel, device) -> bytes
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& now = allowed[{kernel, device}];
  if (bytes <= now) return cudaSuccess;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) now = bytes;
  return e;
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
