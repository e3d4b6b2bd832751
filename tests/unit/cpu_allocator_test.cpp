// The CPU allocator's cache of large blocks: reuse, alignment, and what it holds.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <loom/loom.hpp>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "../../src/core/cpu_allocator.hpp"

using namespace loom;

TEST_CASE("a released large block is reused by the next request of its size", "[allocator]") {
  detail::cpu_empty_cache();
  REQUIRE(detail::cpu_cached_bytes() == 0);
  const void* first = nullptr;
  {
    Tensor t = empty({3 << 18});  // 3 MiB of f32: rounded up to two huge pages
    first = t.data<float>();
    CHECK(reinterpret_cast<uintptr_t>(first) % (size_t{2} << 20) == 0);
  }
  CHECK(detail::cpu_cached_bytes() == (size_t{4} << 20));
  {
    Tensor again = zeros({3 << 18});  // the same rounded size: the same block, zeroed by the op
    CHECK(again.data<float>() == first);
    CHECK(detail::cpu_cached_bytes() == 0);
    CHECK(sum(again).item<float>() == 0.0f);
  }
  {
    Tensor other = empty({5 << 18});  // another size does not take it
    CHECK(other.data<float>() != first);
    CHECK(detail::cpu_cached_bytes() == (size_t{4} << 20));
  }
  CHECK(detail::cpu_cached_bytes() == (size_t{4} + 6) << 20);
  detail::cpu_empty_cache();
  CHECK(detail::cpu_cached_bytes() == 0);
}

TEST_CASE("small blocks bypass the cache and stay 64-byte aligned", "[allocator]") {
  detail::cpu_empty_cache();
  for (int64_t n : {0, 1, 3, 1000, 200000}) {
    Tensor t = empty({n});
    if (n > 0) CHECK(reinterpret_cast<uintptr_t>(t.data<float>()) % 64 == 0);
  }
  CHECK(detail::cpu_cached_bytes() == 0);
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// (glibc's own heap: a sanitizer's allocator replaces it and ignores mallopt)
TEST_CASE("once tuned, glibc serves an 8 MiB block from its heap instead of a fresh mmap", "[allocator]") {
  Tensor first = empty({16});  // the first host allocation applies the tuning
  const auto set = [](const char* name) { return std::getenv(name) != nullptr; };
  const char* env = std::getenv("LOOM_HOST_HEAP");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const bool wanted = (env == nullptr || std::string(env) != "system") && !set("MALLOC_MMAP_THRESHOLD_") &&
                      !set("MALLOC_TRIM_THRESHOLD_") &&
                      (tunables == nullptr || std::string(tunables).find("glibc.malloc.") == std::string::npos);
  REQUIRE(detail::host_heap_tuned() == wanted);
  if (!wanted) return;
  const size_t mapped = mallinfo2().hblks;  // blocks glibc has mmapped and not yet unmapped
  void* block = std::malloc(size_t{8} << 20);
  REQUIRE(block != nullptr);
  std::memset(block, 1, size_t{8} << 20);
  CHECK(mallinfo2().hblks == mapped);
  std::free(block);
}
#endif
