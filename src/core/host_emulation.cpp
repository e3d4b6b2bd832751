// cuda::HostEmulation: stand-in CUDA devices backed by host memory, for
// testing device placement on machines without a GPU (see loom/core/cuda.hpp).
// Storage, the kernel dispatch and the runtime queries consult the count here.
#include <atomic>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"

namespace loom::cuda {

namespace {
std::atomic<int> g_emulated{0};
}  // namespace

HostEmulation::HostEmulation(int devices) {
  LOOM_CHECK(devices >= 1, "cuda::HostEmulation: devices must be >= 1, got ", devices);
  int none = 0;
  LOOM_CHECK(g_emulated.compare_exchange_strong(none, devices),
             "cuda::HostEmulation: an emulation is already active (one at a time)");
}

HostEmulation::~HostEmulation() { g_emulated.store(0); }

int host_emulated_devices() { return g_emulated.load(std::memory_order_relaxed); }

}  // namespace loom::cuda
