// Host memory for CPU tensors, with a cache of large blocks.
//
// Why: glibc serves blocks above its mmap threshold (at most 32 MiB) with a
// fresh mmap and unmaps them on free, so every large tensor a step creates
// (a [2048, 4096] logits tensor, the activations of a big softmax) has all
// of its pages faulted in by the kernel that first writes it, every step:
// measured, that fault-in cost a 2048x4096x192 GEMM 40% of its time and
// held layer_norm over 8192x1024 to a sixth of copy bandwidth. Blocks of
// kLargeBlock bytes or more are therefore rounded up to whole 2 MiB pages,
// aligned to 2 MiB and advised as huge pages (512 times fewer faults when
// they are first touched), and on release kept for reuse by the next request
// of the same rounded size, up to a cap (LOOM_CPU_CACHE_MB, default 1024;
// 0 turns the cache off). A training step asks for the same sizes every
// step, so after the first step it faults nothing in. Smaller blocks go to
// aligned_alloc and free unchanged.
//
// The heap under them (glibc). glibc serves a block from a fresh mmap when
// it is above a threshold that adapts as such blocks are freed, and trims
// the heap's top whenever a few MiB of it are free. A training step frees
// most of what its forward pass made, so step after step memory went back
// to the kernel and was faulted in again: on the omni pretraining step
// 3,500 faults a step and 5% of its time, in blocks under 1 MiB that the
// cache above does not hold (caching those too, by 64 KiB grains, was as
// fast but held 7% more memory at the peak, where glibc's heap reuses freed
// memory across sizes). So on the first host allocation loom fixes glibc's
// mmap threshold at 32 MiB (the ceiling glibc's own adaptation stops at) and
// its trim threshold at 512 MiB, process-wide: what HPC centres have long
// advised for MPI programs through glibc's MALLOC_* variables, for the same
// reason. LOOM_HOST_HEAP=system leaves glibc's defaults, and so does a
// process started with glibc's own malloc settings (MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_ or glibc.malloc.* in GLIBC_TUNABLES);
// LOOM_HOST_HEAP=tuned (the default) asks for the above otherwise.
#pragma once

#include <cstddef>

namespace loom::detail {

inline constexpr size_t kLargeBlock = size_t{1} << 20;

void* cpu_allocate(size_t nbytes);                 // 64-byte aligned at least; loom::Error when out of memory
void cpu_release(void* ptr, size_t nbytes) noexcept;  // nbytes as given to cpu_allocate
size_t cpu_cached_bytes();                         // held by the cache now, for tests and reports
void cpu_empty_cache();                            // frees every cached block
// Whether the environment asks for the heap thresholds above (LOOM_HOST_HEAP
// and glibc's own malloc variables; a bad LOOM_HOST_HEAP is a loom::Error).
bool host_heap_tuning_wanted();
// Whether the heap thresholds above were set (false when not wanted, without
// glibc, or under a sanitizer's allocator); applies them on first call.
bool host_heap_tuned();

}  // namespace loom::detail
