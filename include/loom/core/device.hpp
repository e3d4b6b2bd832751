// Where a tensor's memory lives. CUDA is named here so that the API is stable;
// the CUDA backend registers its kernels under it.
#pragma once

#include <ostream>
#include <string>

namespace loom {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}  // NOLINT
  static constexpr Device cuda(int i = 0) { return Device(DeviceType::CUDA, i); }  // see loom/core/cuda.hpp
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  friend bool operator==(const Device& a, const Device& b) = default;
  std::string str() const {
    return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index);
  }
};

inline constexpr Device kCPU{DeviceType::CPU, 0};
inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace loom
