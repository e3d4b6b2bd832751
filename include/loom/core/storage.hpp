// Ref-counted memory shared by a tensor and all of its views.
// The version counter lives here, so that an in-place change through any view
// is seen by every saved tensor that aliases the same memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "loom/core/device.hpp"

namespace loom {

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

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool host_memory_ = true;  // false for real device memory (cuda::HostEmulation keeps cuda:N on the host)
  std::atomic<uint64_t> version_{0};
};

}  // namespace loom
