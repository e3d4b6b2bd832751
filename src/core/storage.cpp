#include "loom/core/storage.hpp"

#include <cstdlib>
#include <new>

#include "loom/core/error.hpp"

namespace loom {

namespace {
constexpr size_t kAlignment = 64;  // a cache line, and a full AVX-512 register
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  LOOM_CHECK(device.is_cpu(), "Storage: cannot allocate on ", device.str(), ": this build of loom has no CUDA backend");
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data_ == nullptr) throw Error("Storage: out of memory allocating " + std::to_string(nbytes) + " bytes");
}

Storage::~Storage() { std::free(data_); }

}  // namespace loom
