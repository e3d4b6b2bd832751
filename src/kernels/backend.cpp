#include "kernels/backend.hpp"
#include "kernels/profile.hpp"

#include <array>
#include <atomic>

#include "loom/core/cuda.hpp"

namespace loom::cuda {
void add_emulated_tile_kernels(kernels::Backend& table);  // cuda/emulated_tiles.cpp
}  // namespace loom::cuda

namespace loom::kernels {

namespace {
std::array<std::atomic<const Backend*>, 2>& tables() {
  static std::array<std::atomic<const Backend*>, 2> t{};
  return t;
}
}  // namespace

const Backend* cpu_backend();  // defined in src/cpu/backend_cpu.cpp

#if LOOM_WITH_CUDA
// cuda/backend_cuda.cpp: the CUDA table, registered on first use; nullptr when
// no device is present.
const Backend* cuda_backend();
#endif

namespace {

#if LOOM_WITH_CUDA
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

// While device tensors are about (a CUDA build, or a cuda::HostEmulation), a
// tensor must never reach another device's kernel: the tables below wrap the
// CPU kernels so that every entry first checks that its tensors sit on one
// device of the table's type. The CPU table serves the CPU; the emulated
// table serves cuda:N when it is host memory.
struct OneDevice {
  const char* entry;
  DeviceType type;
  const Tensor* first = nullptr;

  void operator()(const Tensor& t) {
    if (!t.defined()) return;
    LOOM_CHECK(t.device().type == type, entry, ": a tensor on ", t.device().str(), " reached the ",
               type == DeviceType::CPU ? "CPU" : "CUDA",
               " kernel (operands must be on one device; move them with loom::to_device)");
    if (first == nullptr) first = &t;
    LOOM_CHECK(t.device() == first->device(), entry, ": tensors on different devices (", first->device().str(),
               " and ", t.device().str(), "; move them with loom::to_device)");
  }
  void operator()(const std::vector<Tensor>& list) {  // an entry taking tensor lists checks each
    for (const Tensor& t : list) (*this)(t);
  }
  template <class T>
  void operator()(const T&) {}
};

// Copies between devices: the emulated devices are host memory, so the CPU
// copy moves their data; real devices need the CUDA table, which moves data
// both ways (t_cpu.copy_(t_cuda) lands here with a CPU destination).
void cross_device_copy(const Tensor& src, const Tensor& dst) {
  if (src.device() == dst.device() || cuda::host_emulated_devices() > 0) {
    cpu_backend()->copy(src, dst);
    return;
  }
#if LOOM_WITH_CUDA
  const Backend* cuda = cuda_backend();
  LOOM_CHECK(cuda != nullptr, "copy from ", src.device().str(), " to ", dst.device().str(), ": ",
             cuda_unavailable_reason());
  cuda->copy(src, dst);
#else
  LOOM_FAIL("copy from ", src.device().str(), " to ", dst.device().str(), ": ", cuda_unavailable_reason());
#endif
}

template <DeviceType kType>
const Backend* guarded_table() {
  static const Backend table = [] {
    Backend g{};
    // Every entry the CPU has, checked; copy and sum_squares are set below.
#define LOOM_GUARD_ENTRY(entry)                 \
  if (cpu_backend()->entry != nullptr)          \
    g.entry = [](auto... a) {                   \
      OneDevice check{#entry, kType};           \
      (check(a), ...);                          \
      return cpu_backend()->entry(a...);        \
    };
    LOOM_BACKEND_ENTRIES(LOOM_GUARD_ENTRY)
#undef LOOM_GUARD_ENTRY
    // A list spread over devices is declined: grad_norm then sums each
    // tensor where it lives.
    g.sum_squares = [](const std::vector<Tensor>& list, double* out) {
      for (const Tensor& t : list)
        if (!t.defined() || t.device().type != kType || t.device() != list.front().device()) return false;
      return cpu_backend()->sum_squares(list, out);
    };
    g.copy = cross_device_copy;
    return g;
  }();
  return &table;
}

// The emulated devices' table with the CUDA backend's tile kernels on the SIMT
// emulator (cuda/emulated_tiles.cpp) added to the CPU kernels.
const Backend* tile_table() {
  static const Backend table = [] {
    Backend t = *guarded_table<DeviceType::CUDA>();
    cuda::add_emulated_tile_kernels(t);
    return t;
  }();
  return &table;
}

}  // namespace

void register_backend(DeviceType type, const Backend* table) { tables()[static_cast<size_t>(type)].store(table); }

namespace {

const Backend& table_for(Device device) {
  const bool emulated = cuda::host_emulated_devices() > 0;
  if (device.is_cpu()) return (kCudaBuild || emulated) ? *guarded_table<DeviceType::CPU>() : *cpu_backend();
  if (device.is_cuda() && emulated)
    return cuda::host_emulation_runs_tiles() ? *tile_table() : *guarded_table<DeviceType::CUDA>();
  const Backend* t = tables()[static_cast<size_t>(device.type)].load();
#if LOOM_WITH_CUDA
  if (t == nullptr && device.is_cuda()) t = cuda_backend();
#endif
  LOOM_CHECK(t != nullptr, "no kernels for device ", device.str(), ": ", cuda_unavailable_reason());
  return *t;
}

}  // namespace

const Backend& backend(Device device) {
  const Backend& table = table_for(device);
  return kernel_profile_on() ? profiled(table) : table;
}

}  // namespace loom::kernels
