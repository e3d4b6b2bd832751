// Host memory for CPU tensors, with a cache of large blocks (see cpu_allocator.hpp).
#include "core/cpu_allocator.hpp"

#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "loom/core/error.hpp"

namespace loom::detail {

namespace {

constexpr size_t kAlignment = 64;              // a cache line, and a full AVX-512 register
constexpr size_t kHugePage = size_t{2} << 20;  // the x86-64 transparent huge page

size_t cache_limit_from_env() {
  const char* env = std::getenv("LOOM_CPU_CACHE_MB");
  if (env == nullptr || *env == '\0') return size_t{1024} << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(env, &end, 10);
  LOOM_CHECK(end != env && *end == '\0' && mb >= 0, "LOOM_CPU_CACHE_MB must be a whole number of MiB >= 0, got '",
             env, "'");
  return static_cast<size_t>(mb) << 20;
}

struct LargeBlockCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  size_t cached = 0;
  size_t limit = cache_limit_from_env();
};

// Never destroyed: tensors held by static objects may be released after
// every static destructor of this library has run.
LargeBlockCache& cache() {
  static auto* c = new LargeBlockCache;
  return *c;
}

}  // namespace

// LOOM_HOST_HEAP: "tuned" (default) or "system". A process that sets glibc's
// own malloc variables has chosen its heap: those are left to rule.
bool host_heap_tuning_wanted() {
  const char* env = std::getenv("LOOM_HOST_HEAP");
  const std::string v = env == nullptr ? "" : env;
  LOOM_CHECK(v.empty() || v == "tuned" || v == "system", "LOOM_HOST_HEAP must be 'tuned' or 'system', got '", v, "'");
  if (v == "system") return false;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr && std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr &&
         (tunables == nullptr || std::string(tunables).find("glibc.malloc.") == std::string::npos);
}

namespace {

bool tune_heap() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  if (!host_heap_tuning_wanted()) return false;
  // mallopt returns 1 on success; setting either value also stops glibc's
  // adaptation of the other, so both are set.
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
#else
  host_heap_tuning_wanted();  // a bad value is still an error
  return false;
#endif
}

size_t large_size(size_t nbytes) { return (nbytes + kHugePage - 1) / kHugePage * kHugePage; }

}  // namespace

bool host_heap_tuned() {
  static const bool tuned = tune_heap();
  return tuned;
}

void* cpu_allocate(size_t nbytes) {
  host_heap_tuned();
  if (nbytes < kLargeBlock) {
    const size_t rounded = nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) throw Error("Storage: out of memory allocating " + std::to_string(nbytes) + " bytes");
    return p;
  }
  const size_t size = large_size(nbytes);
  LargeBlockCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= size;
      return p;
    }
  }
  void* p = std::aligned_alloc(kHugePage, size);
  if (p == nullptr) {  // what the cache holds may be what is missing
    cpu_empty_cache();
    p = std::aligned_alloc(kHugePage, size);
  }
  if (p == nullptr) throw Error("Storage: out of memory allocating " + std::to_string(nbytes) + " bytes");
  madvise(p, size, MADV_HUGEPAGE);  // advice only: without transparent huge pages it changes nothing
  return p;
}

void cpu_release(void* ptr, size_t nbytes) noexcept {
  if (ptr == nullptr) return;
  if (nbytes < kLargeBlock) {
    std::free(ptr);
    return;
  }
  const size_t size = large_size(nbytes);
  LargeBlockCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached + size <= c.limit) {
      try {
        c.free_blocks[size].push_back(ptr);
        c.cached += size;
        return;
      } catch (...) {  // no memory for the bookkeeping: free the block instead
      }
    }
  }
  std::free(ptr);
}

size_t cpu_cached_bytes() {
  LargeBlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.cached;
}

void cpu_empty_cache() {
  LargeBlockCache& c = cache();
  std::unordered_map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    blocks.swap(c.free_blocks);
    c.cached = 0;
  }
  for (auto& [size, list] : blocks)
    for (void* p : list) std::free(p);
}

}  // namespace loom::detail
