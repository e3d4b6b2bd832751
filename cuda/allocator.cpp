// The CUDA caching allocator behind Storage on cuda:N.
//
// Requests are rounded up to a size class; a freed block goes on its class's
// free list and the next request of that class takes it, so a training loop
// that allocates the same shapes every step stops calling cudaMalloc after its
// first step. Classes: multiples of 512 B below 1 MiB, then four classes per
// power of two (at most 25% slack). Blocks are never split or merged.
// When cudaMalloc fails, every cached block is returned to the driver and the
// request tried once more before loom::Error reports the accounting.
//
// Blocks are handed out again without synchronisation: all of loom's work on
// a device runs on one stream, in order, so later work that reuses a block
// runs after the work that freed it.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"

#if LOOM_WITH_CUDA
#include "runtime.hpp"
#endif

namespace loom::cuda {

#if LOOM_WITH_CUDA

namespace detail {

size_t size_class(size_t nbytes) {
  constexpr size_t kSmallStep = 512;
  constexpr size_t kLarge = size_t{1} << 20;
  if (nbytes == 0) nbytes = 1;
  if (nbytes < kLarge) return (nbytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t p = kLarge;
  while (p <= nbytes / 2) p *= 2;  // the largest power of two <= nbytes
  const size_t step = p / 4;
  return (nbytes + step - 1) / step * step;
}

namespace {

std::atomic<bool> g_poison{false};

struct Block {
  size_t size = 0;       // the class
  size_t requested = 0;  // what the caller asked for
};

struct DeviceCache {
  std::mutex mutex;
  std::unordered_map<void*, Block> live;
  std::map<size_t, std::vector<void*>> free;  // class -> cached blocks
  MemoryStats stats;

  void note_peaks() {
    if (stats.allocated_bytes > stats.peak_allocated_bytes) stats.peak_allocated_bytes = stats.allocated_bytes;
    if (stats.reserved_bytes > stats.peak_reserved_bytes) stats.peak_reserved_bytes = stats.reserved_bytes;
  }

  // Returns every cached block to the driver (mutex held).
  void release_cached(int device) {
    DeviceGuard guard(device);
    for (auto& [size, blocks] : free) {
      for (void* p : blocks) {
        LOOM_CUDA_CHECK(cudaFree(p), "device ", device, ", block of ", size, " bytes");
        stats.reserved_bytes -= size;
        ++stats.device_frees;
      }
    }
    free.clear();
  }
};

// Leaked on purpose: storages released during static destruction still find it.
DeviceCache& cache(int device) {
  static std::vector<std::unique_ptr<DeviceCache>>* caches = [] {
    auto* v = new std::vector<std::unique_ptr<DeviceCache>>();
    for (int i = 0; i < cuda_device_count(); ++i) v->push_back(std::make_unique<DeviceCache>());
    return v;
  }();
  LOOM_CHECK(cuda_available(), "cuda:", device, ": ", cuda_unavailable_reason());
  LOOM_CHECK(device >= 0 && device < static_cast<int>(caches->size()), "cuda:", device, " does not exist (",
             caches->size(), " CUDA device(s) visible)");
  return *(*caches)[static_cast<size_t>(device)];
}

std::string mib(size_t bytes) {
  return std::to_string(static_cast<double>(bytes) / static_cast<double>(1 << 20)) + " MiB";
}

}  // namespace

void* device_allocate(size_t nbytes, int device) {
  if (!cuda_available())
    LOOM_FAIL("Storage: cannot allocate ", nbytes, " bytes on cuda:", device, ": ", cuda_unavailable_reason());
  DeviceCache& c = cache(device);
  const size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(c.mutex);
  ++c.stats.allocations;
  void* p = nullptr;
  auto it = c.free.find(cls);
  if (it != c.free.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++c.stats.cache_hits;
  } else {
    DeviceGuard guard(device);
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky; clear it and retry with the cache emptied
      c.release_cached(device);
      err = cudaMalloc(&p, cls);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      LOOM_FAIL("CUDA out of memory: cannot allocate ", mib(cls), " (", nbytes, " bytes asked) on cuda:", device,
                "; loom holds ", mib(c.stats.allocated_bytes), " in live tensors and ", mib(c.stats.reserved_bytes),
                " from the driver; the device has ", mib(free_b), " free of ", mib(total_b));
    }
    LOOM_CUDA_CHECK(err, "cudaMalloc of ", cls, " bytes on cuda:", device);
    ++c.stats.device_mallocs;
    c.stats.reserved_bytes += cls;
  }
  if (g_poison.load(std::memory_order_relaxed)) {
    DeviceGuard guard(device);
    LOOM_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, cls, stream(device)), "poisoning a block of ", cls, " bytes");
  }
  c.live[p] = Block{cls, nbytes};
  c.stats.allocated_bytes += cls;
  c.stats.requested_bytes += nbytes;
  c.note_peaks();
  return p;
}

void device_release(void* ptr, int device) noexcept {
  if (ptr == nullptr) return;
  try {
    DeviceCache& c = cache(device);
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.live.find(ptr);
    if (it == c.live.end()) return;  // not ours; nothing sane to do in a destructor
    const Block b = it->second;
    c.live.erase(it);
    c.stats.allocated_bytes -= b.size;
    c.stats.requested_bytes -= b.requested;
    c.free[b.size].push_back(ptr);
  } catch (...) {
    // A destructor must not throw; the block stays with the driver.
  }
}

}  // namespace detail

void set_poison_allocations(bool on) { detail::g_poison.store(on); }

MemoryStats memory_stats(int device) {
  auto& c = detail::cache(device);
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

void reset_peak_memory_stats(int device) {
  auto& c = detail::cache(device);
  std::lock_guard<std::mutex> lock(c.mutex);
  c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
  c.stats.peak_reserved_bytes = c.stats.reserved_bytes;
}

void empty_cache(int device) {
  auto& c = detail::cache(device);
  std::lock_guard<std::mutex> lock(c.mutex);
  c.release_cached(device);
}

#else  // !LOOM_WITH_CUDA

void set_poison_allocations(bool) { LOOM_FAIL("cuda::set_poison_allocations: this build of loom has no CUDA backend"); }

MemoryStats memory_stats(int device) {
  LOOM_FAIL("cuda::memory_stats(cuda:", device, "): this build of loom has no CUDA backend");
}
void reset_peak_memory_stats(int device) {
  LOOM_FAIL("cuda::reset_peak_memory_stats(cuda:", device, "): this build of loom has no CUDA backend");
}
void empty_cache(int device) {
  LOOM_FAIL("cuda::empty_cache(cuda:", device, "): this build of loom has no CUDA backend");
}

#endif  // LOOM_WITH_CUDA

}  // namespace loom::cuda
