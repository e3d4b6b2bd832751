// Ref-counted memory shared by a tensor and all of its views.
// The version counter lives here, so that an in-place change through any view
// is seen by every saved tensor that aliases the same memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "loom/core/device.hpp"
#include "loom/core/dtype.hpp"

namespace loom {

struct TensorImpl;

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

  // A copy of these values in another dtype, kept by the code that made it
  // (autocast keeps its parameters' half-precision casts here:
  // loom/ops/autocast.hpp), current while `of_version` equals version(). It
  // lives and dies with this storage. Not synchronised: its keeper locks.
  struct CastCopy {
    std::shared_ptr<TensorImpl> copy;  // contiguous, this storage's element count
    DType dtype = DType::f32;
    uint64_t of_version = 0;
  };
  CastCopy& cast_copy() { return cast_copy_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool host_memory_ = true;  // false for real device memory (cuda::HostEmulation keeps cuda:N on the host)
  std::atomic<uint64_t> version_{0};
  CastCopy cast_copy_;
};

}  // namespace loom
