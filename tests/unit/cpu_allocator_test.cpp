// The CPU allocator's cache of large blocks: reuse, alignment, and what it holds.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
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
  const bool wanted = detail::host_heap_tuning_wanted();  // true unless the environment opts out
  REQUIRE(detail::host_heap_tuned() == wanted);           // and then mallopt must have taken both values
  if (!wanted) return;
  const size_t mapped = mallinfo2().hblks;  // blocks glibc has mmapped and not yet unmapped
  void* block = std::malloc(size_t{8} << 20);
  REQUIRE(block != nullptr);
  std::memset(block, 1, size_t{8} << 20);
  CHECK(mallinfo2().hblks == mapped);
  std::free(block);
}
#endif

// Sets an environment variable for one scope, then puts back what was there.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char* n, const char* value) : name(n) {
    if (const char* v = std::getenv(n)) old = v;
    if (value) setenv(n, value, 1);
    else unsetenv(n);
  }
  ~ScopedEnv() {
    if (old) setenv(name.c_str(), old->c_str(), 1);
    else unsetenv(name.c_str());
  }
};

TEST_CASE("LOOM_HOST_HEAP and glibc's own malloc variables decide whether the heap is tuned", "[allocator]") {
  ScopedEnv heap("LOOM_HOST_HEAP", nullptr), mmap("MALLOC_MMAP_THRESHOLD_", nullptr),
      trim("MALLOC_TRIM_THRESHOLD_", nullptr), tunables("GLIBC_TUNABLES", nullptr);
  CHECK(detail::host_heap_tuning_wanted());
  {
    ScopedEnv tuned("LOOM_HOST_HEAP", "tuned");
    CHECK(detail::host_heap_tuning_wanted());
  }
  {
    ScopedEnv system("LOOM_HOST_HEAP", "system");
    CHECK_FALSE(detail::host_heap_tuning_wanted());
  }
  {
    ScopedEnv bad("LOOM_HOST_HEAP", "fast");
    CHECK_THROWS_WITH(detail::host_heap_tuning_wanted(), Catch::Contains("LOOM_HOST_HEAP") && Catch::Contains("'fast'"));
  }
  {
    ScopedEnv own("MALLOC_TRIM_THRESHOLD_", "1048576");
    CHECK_FALSE(detail::host_heap_tuning_wanted());
  }
  {
    ScopedEnv own("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536");
    CHECK_FALSE(detail::host_heap_tuning_wanted());
  }
  {
    ScopedEnv other("GLIBC_TUNABLES", "glibc.pthread.rseq=0");  // not a malloc setting
    CHECK(detail::host_heap_tuning_wanted());
  }
}
