// cuda::HostEmulation: stand-in CUDA devices backed by host memory, for
// testing device placement on machines without a GPU (see loom/core/cuda.hpp).
// Storage, the kernel dispatch and the runtime queries consult the count here.
#include <atomic>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"

namespace loom::cuda {

namespace {
std::atomic<int> g_emulated{0};
std::atomic<bool> g_tiles{false};
}  // namespace

HostEmulation::HostEmulation(int devices, EmulatedKernels kernels) {
  LOOM_CHECK(devices >= 1, "cuda::HostEmulation: devices must be >= 1, got ", devices);
  int none = 0;
  LOOM_CHECK(g_emulated.compare_exchange_strong(none, devices),
             "cuda::HostEmulation: an emulation is already active (one at a time)");
  g_tiles.store(kernels == EmulatedKernels::cpu_and_tiles);
}

HostEmulation::~HostEmulation() {
  g_tiles.store(false);
  g_emulated.store(0);
}

bool host_emulation_runs_tiles() { return g_tiles.load(std::memory_order_relaxed); }

int host_emulated_devices() { return g_emulated.load(std::memory_order_relaxed); }

}  // namespace loom::cuda
