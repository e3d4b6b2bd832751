#include "kernels/backend.hpp"

#include <array>

namespace loom::kernels {

namespace {
std::array<const Backend*, 2>& tables() {
  static std::array<const Backend*, 2> t{};
  return t;
}
}  // namespace

const Backend* cpu_backend();  // defined in src/cpu/backend_cpu.cpp

void register_backend(DeviceType type, const Backend* table) { tables()[static_cast<size_t>(type)] = table; }

const Backend& backend(Device device) {
  if (device.is_cpu()) return *cpu_backend();
  const Backend* t = tables()[static_cast<size_t>(device.type)];
  LOOM_CHECK(t != nullptr, "no kernels for device ", device.str(), ": this build of loom has no CUDA backend");
  return *t;
}

}  // namespace loom::kernels
