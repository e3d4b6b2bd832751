#if LOOM_WITH_CUDA && LOOM_WITH_CUDNN

#include "cudnn_handle.hpp"

#include <array>
#include <mutex>

#include "runtime.hpp"

namespace loom::cuda {

cudnnHandle_t cudnn(int device) {
  struct Slot {
    std::once_flag once;
    cudnnHandle_t handle = nullptr;
  };
  static auto* slots = new std::array<Slot, 64>();
  LOOM_CHECK(device >= 0 && device < 64, "cuDNN: device index ", device, " out of range");
  Slot& s = (*slots)[static_cast<size_t>(device)];
  std::call_once(s.once, [&] {
    DeviceGuard guard(device);
    LOOM_CUDNN_CHECK(cudnnCreate(&s.handle), "device ", device);
    LOOM_CUDNN_CHECK(cudnnSetStream(s.handle, stream(device)), "device ", device);
  });
  return s.handle;
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN
