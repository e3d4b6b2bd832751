// Pinned staging for host-to-device uploads (a batch, a checkpoint's
// weights). A copy from pageable memory makes the driver stage it through its
// own pinned buffer and blocks the caller until the DMA is done; loom instead
// copies the source into a page-locked block of its own, queues the DMA from
// there on the device's stream and returns, so the host goes on (the next
// batch, the next tensor) while the copy engine works, and the transfer runs
// at pinned-memory bandwidth. A block is handed out again only once an event
// recorded after its copy has completed (cudaEventQuery, never a wait, unless
// the pool is at its cap). Blocks come in power-of-two sizes from 64 KiB.
// The pool keeps at most 1 GiB per device; beyond that an upload first waits
// for pending blocks.
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "loom/core/error.hpp"

#if LOOM_WITH_CUDA
#include "runtime.hpp"

namespace loom::cuda {

namespace {

constexpr size_t kMinBlock = size_t{64} << 10;
constexpr size_t kMaxPoolBytes = size_t{1} << 30;

size_t block_size_for(size_t bytes) {
  size_t size = kMinBlock;
  while (size < bytes) size *= 2;
  return size;
}

struct Block {
  void* host = nullptr;
  size_t bytes = 0;
  cudaEvent_t copied = nullptr;  // recorded after the block's last copy
  bool pending = false;          // that copy may still be running
};

class DevicePool {
 public:
  explicit DevicePool(int device) : device_(device) {}

  // A free block of at least `bytes`, allocating or waiting as needed.
  Block& acquire(size_t bytes) {
    const size_t want = block_size_for(bytes);
    Block* best = nullptr;
    for (Block& b : blocks_) {
      if (b.bytes < want || (best && b.bytes >= best->bytes)) continue;
      if (b.pending) {
        const cudaError_t state = cudaEventQuery(b.copied);
        if (state == cudaErrorNotReady) continue;
        LOOM_CUDA_CHECK(state, "pinned staging block of ", b.bytes, " bytes on cuda:", device_);
        b.pending = false;
      }
      best = &b;
    }
    if (best) return *best;
    if (reserved_ + want > kMaxPoolBytes && !blocks_.empty()) return wait_for_fit(want);
    Block b;
    b.bytes = want;
    LOOM_CUDA_CHECK(cudaHostAlloc(&b.host, want, cudaHostAllocPortable), want, " bytes of pinned host memory");
    LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&b.copied, cudaEventDisableTiming));
    reserved_ += want;
    blocks_.push_back(b);
    return blocks_.back();
  }

 private:
  // At the cap: waits for the blocks in turn until one fits `want`; when none
  // does, returns them all to the driver and allocates one that fits.
  Block& wait_for_fit(size_t want) {
    for (Block& b : blocks_) {
      if (b.pending) LOOM_CUDA_CHECK(cudaEventSynchronize(b.copied), "pinned staging on cuda:", device_);
      b.pending = false;
      if (b.bytes >= want) return b;
    }
    // None fits: give the small ones back and make one that does.
    for (Block& b : blocks_) {
      LOOM_CUDA_CHECK(cudaFreeHost(b.host));
      LOOM_CUDA_CHECK(cudaEventDestroy(b.copied));
    }
    blocks_.clear();
    reserved_ = 0;
    return acquire(want);
  }

  int device_;
  size_t reserved_ = 0;
  std::deque<Block> blocks_;  // deque: references stay valid as it grows
};

std::mutex g_mutex;
std::vector<DevicePool>& pools() {
  static std::vector<DevicePool> p;
  return p;
}

}  // namespace

void upload_async(void* device_dst, const void* host_src, size_t bytes, int device) {
  if (bytes == 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<DevicePool>& all = pools();
  while (static_cast<int>(all.size()) <= device) all.emplace_back(static_cast<int>(all.size()));
  Block& b = all[static_cast<size_t>(device)].acquire(bytes);
  std::memcpy(b.host, host_src, bytes);
  const cudaStream_t s = stream(device);
  LOOM_CUDA_CHECK(cudaMemcpyAsync(device_dst, b.host, bytes, cudaMemcpyHostToDevice, s), bytes, " bytes to cuda:",
                  device);
  LOOM_CUDA_CHECK(cudaEventRecord(b.copied, s), "after an upload to cuda:", device);
  b.pending = true;
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA
