#include "loom/core/storage.hpp"

#include <cstdlib>
#include <new>

#include "core/cpu_allocator.hpp"
#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"

namespace loom {

#if LOOM_WITH_CUDA
// The CUDA caching allocator (cuda/allocator.cpp).
namespace cuda::detail {
void* device_allocate(size_t nbytes, int device);
void device_release(void* ptr, int device) noexcept;
}  // namespace cuda::detail
#endif

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cuda() && cuda::host_emulated_devices() > 0) {
    LOOM_CHECK(device.index >= 0 && device.index < cuda::host_emulated_devices(), "Storage: cannot allocate on ",
               device.str(), ": the host emulation has ", cuda::host_emulated_devices(), " device(s)");
    data_ = detail::cpu_allocate(nbytes);
    return;
  }
  if (device.is_cuda()) {
#if LOOM_WITH_CUDA
    host_memory_ = false;
    data_ = cuda::detail::device_allocate(nbytes, device.index);
    return;
#else
    LOOM_FAIL("Storage: cannot allocate on ", device.str(), ": this build of loom has no CUDA backend");
#endif
  }
  LOOM_CHECK(device.is_cpu(), "Storage: cannot allocate on ", device.str());
  data_ = detail::cpu_allocate(nbytes);
}

Storage::~Storage() {
#if LOOM_WITH_CUDA
  if (!host_memory_) {
    cuda::detail::device_release(data_, device_.index);
    return;
  }
#endif
  detail::cpu_release(data_, nbytes_);
}

}  // namespace loom
