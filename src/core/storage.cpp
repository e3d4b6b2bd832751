#include "loom/core/storage.hpp"

#include <cstdlib>
#include <new>

#include "loom/core/error.hpp"

namespace loom {

#if LOOM_WITH_CUDA
// The CUDA caching allocator (cuda/allocator.cpp).
namespace cuda::detail {
void* device_allocate(size_t nbytes, int device);
void device_release(void* ptr, int device) noexcept;
}  // namespace cuda::detail
#endif

namespace {
constexpr size_t kAlignment = 64;  // a cache line, and a full AVX-512 register
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cuda()) {
#if LOOM_WITH_CUDA
    data_ = cuda::detail::device_allocate(nbytes, device.index);
    return;
#else
    LOOM_FAIL("Storage: cannot allocate on ", device.str(), ": this build of loom has no CUDA backend");
#endif
  }
  LOOM_CHECK(device.is_cpu(), "Storage: cannot allocate on ", device.str());
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data_ == nullptr) throw Error("Storage: out of memory allocating " + std::to_string(nbytes) + " bytes");
}

Storage::~Storage() {
#if LOOM_WITH_CUDA
  if (device_.is_cuda()) {
    cuda::detail::device_release(data_, device_.index);
    return;
  }
#endif
  std::free(data_);
}

}  // namespace loom
