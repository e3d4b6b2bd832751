// The few device primitives loom's hand-written tile kernels use, written so
// that one kernel source compiles two ways:
//   - under nvcc (__CUDACC__) every name maps straight onto CUDA: thread and
//     block indices, __syncthreads, __syncwarp, warp shuffles, dynamic shared
//     memory, nvcuda::wmma tensor-core fragments, <<<>>> launches;
//   - under a host compiler the same names run the kernel on a SIMT
//     emulator: every CUDA thread of a block is an OS thread (from a pool
//     reused across blocks), __syncthreads and __syncwarp are barriers,
//     shuffles go through a per-warp exchange,
//     shared memory is one buffer per block, poisoned with NaN bytes, and
//     wmma fragments hold whole tiles (the fragment layout is opaque in the
//     CUDA API, so code that only loads, multiplies and stores them cannot
//     tell the difference);
//     under a serial schedule (simt_schedule.hpp) a block's threads run one
//     at a time between barriers, in increasing or decreasing order, which
//     makes a race within a barrier interval change the result.
// The emulator is how the kernels' indexing, masking, tiling and
// synchronisation are tested on machines without a GPU
// (tests/cuda/*_emulated_test.cpp; ctest simt.* and device.tiles.*). It
// checks what a GPU would fault on: wmma pointers must be 32-byte aligned and
// leading dimensions 16-byte multiples, dynamic shared memory must fit the
// launch; the serial schedules name a deadlock instead of hanging. What it
// cannot check is speed, memory coalescing or bank conflicts.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

// Functions both the kernels and the host code that launches them call.
#if defined(__CUDACC__)
#define LOOM_SIMT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LOOM_SIMT_HOST_DEVICE inline
#endif

// The kernel headers compile twice into one library in a CUDA build (nvcc for
// the device, the host compiler for the emulator). Everything they define
// lives in an inline namespace named after the compilation, so the two never
// share a symbol (a kernel's nvcc launch stub and its emulated body would
// otherwise have one name, and the linker would keep only one of them).
#if defined(__CUDACC__)
#define LOOM_SIMT_ABI device_build
#else
#define LOOM_SIMT_ABI host_emulation
#endif

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#define LOOM_SIMT_GLOBAL __global__
#define LOOM_SIMT_DEVICE __device__ __forceinline__
// Unrolls the loop after it: register arrays indexed by its variable stay in
// registers (a run-time index would move them to local memory).
#define LOOM_SIMT_UNROLL _Pragma("unroll")

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;
using Dim3 = dim3;
using Stream = cudaStream_t;

LOOM_SIMT_DEVICE unsigned thread_x() { return threadIdx.x; }
LOOM_SIMT_DEVICE unsigned block_x() { return blockIdx.x; }
LOOM_SIMT_DEVICE unsigned block_y() { return blockIdx.y; }
LOOM_SIMT_DEVICE unsigned block_dim_x() { return blockDim.x; }
LOOM_SIMT_DEVICE unsigned grid_dim_x() { return gridDim.x; }
LOOM_SIMT_DEVICE float bits_to_float(uint32_t u) { return __uint_as_float(u); }
// *p += v, atomically (f32, f64, i32, i64).
template <class T>
LOOM_SIMT_DEVICE void atomic_add(T* p, T v) {
  if constexpr (sizeof(T) == 8 && !std::is_floating_point_v<T>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else {
    atomicAdd(p, v);
  }
}
LOOM_SIMT_DEVICE uint32_t float_to_bits(float f) { return __float_as_uint(f); }
LOOM_SIMT_DEVICE void sync_block() { __syncthreads(); }
LOOM_SIMT_DEVICE void sync_warp() { __syncwarp(); }
LOOM_SIMT_DEVICE float shfl_xor(float v, int lane_mask) { return __shfl_xor_sync(0xffffffffu, v, lane_mask); }
LOOM_SIMT_DEVICE double shfl_xor(double v, int lane_mask) { return __shfl_xor_sync(0xffffffffu, v, lane_mask); }
// Whether `p` holds on every lane of the warp; every lane must call it.
LOOM_SIMT_DEVICE bool all_lanes(bool p) { return __all_sync(0xffffffffu, p) != 0; }
// 2^x on the special-function unit (ex2.approx: about 2 ulp), subnormal
// results flushed to zero. For softmax terms, which are summed with a term of
// 1: one instruction where exp2f spends four on its range fix-up.
LOOM_SIMT_DEVICE float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// Asks L2 for the line holding p: a hint, no value and no fault.
LOOM_SIMT_DEVICE void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

template <class T>
LOOM_SIMT_DEVICE T* dynamic_shared() {
  extern __shared__ __align__(128) unsigned char loom_simt_shared[];
  return reinterpret_cast<T*>(loom_simt_shared);
}

LOOM_SIMT_DEVICE float to_float(float x) { return x; }
LOOM_SIMT_DEVICE float to_float(bf16 x) { return __bfloat162float(x); }
template <class T>
LOOM_SIMT_DEVICE T from_float(float x);
template <>
LOOM_SIMT_DEVICE float from_float<float>(float x) { return x; }
template <>
LOOM_SIMT_DEVICE bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

// 16 bytes from src to dst, both 16-byte aligned.
LOOM_SIMT_DEVICE void copy16(void* dst, const void* src) {
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
}
LOOM_SIMT_DEVICE void zero16(void* dst) { *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0); }
// 8 bytes, both 8-byte aligned.
LOOM_SIMT_DEVICE void copy8(void* dst, const void* src) {
  *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(src);
}

// Lets `kernel` use `bytes` of dynamic shared memory on the current device:
// raises the kernel's limit once per kernel and device, to the largest size
// asked for so far (under a lock: the limit is shared by every launch).
cudaError_t allow_shared_bytes(const void* kernel, size_t bytes);

// Launches kernel<<<grid, block, shared_bytes, stream>>>, first raising the
// kernel's dynamic shared memory limit when it needs more than the default.
template <class... Params, class... Args>
cudaError_t launch(Dim3 grid, Dim3 block, size_t shared_bytes, Stream stream, void (*kernel)(Params...),
                   Args... args) {
  if (shared_bytes > 48 * 1024) {
    const cudaError_t e = allow_shared_bytes(reinterpret_cast<const void*>(kernel), shared_bytes);
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<Params>(args)...);
  return cudaGetLastError();
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt

#else  // host emulation

#include <atomic>
#include <barrier>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <semaphore>
#include <thread>
#include <type_traits>
#include <vector>

#include "loom/core/dtype.hpp"
#include "simt_schedule.hpp"

#define LOOM_SIMT_GLOBAL inline  // kernels live in headers
#define LOOM_SIMT_DEVICE inline
#define LOOM_SIMT_UNROLL

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

using bf16 = loom::bf16;
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  Dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}  // NOLINT: like dim3
};
struct Stream {};

// The largest dynamic shared memory a block may ask for (an H100/H200's
// opt-in limit): a launch above it would fail on the device.
inline constexpr size_t kMaxSharedBytes = 227 * 1024;

namespace detail {

struct Warp {
  std::barrier<> barrier{32};
  uint64_t slots[32] = {};
  uint32_t fragments[32][6] = {};  // each lane's registers for the warp's matrix ops (simt_mma.cuh)
};

struct Block {
  std::unique_ptr<std::barrier<>> barrier;
  std::vector<Warp> warps;
  std::unique_ptr<SerialBlock> serial;  // set under a serial schedule, which then replaces the barriers
  unsigned char* shared = nullptr;
  size_t shared_bytes = 0;
  unsigned threads = 0, grid_x = 0;  // blockDim.x, gridDim.x
};

struct ThreadState {
  unsigned thread = 0, block_x = 0, block_y = 0;
  Block* block = nullptr;
};
inline thread_local ThreadState self;

// Waits at the barrier of the calling thread's block (Scope::block) or warp,
// under either schedule. Under a serial one every thread of the block is a
// fiber of one OS thread, which shares `self`: a thread keeps its own across
// the switch.
enum class Scope { block, warp };
inline void barrier(Scope scope) {
  Block& b = *self.block;
  if (b.serial) {
    const ThreadState me = self;
    if (scope == Scope::block) {
      b.serial->arrive_block(me.thread);
    } else {
      b.serial->arrive_warp(me.thread);
    }
    self = me;
  } else {
    (scope == Scope::block ? *b.barrier : b.warps[self.thread / 32].barrier).arrive_and_wait();
  }
}
// wmma's operations wait for every lane of the warp before they act; the
// serial schedules honour that, the concurrent one has no need to.
inline void wmma_collective() {
  if (self.block->serial) barrier(Scope::warp);
}

// The OS threads that play a block's CUDA threads, kept across blocks and
// launches: creating one per CUDA thread per block cost more than the
// kernels. Each worker waits on its own semaphore, so a 32-thread block
// wakes 32 workers, not all of them. One launch at a time.
class WorkerPool {
 public:
  static WorkerPool& get() {
    static WorkerPool* pool = new WorkerPool;  // parked threads end with the process
    return *pool;
  }

  // Runs body(t) for t in [0, n), each on its own thread, all at once (the
  // block's barriers need every thread alive); returns when all are done.
  void run(unsigned n, const std::function<void(unsigned)>& body) {
    std::lock_guard<std::mutex> one_launch(launch_mutex_);
    while (workers_.size() < n) spawn();
    body_ = &body;
    remaining_.store(n);
    for (unsigned t = 0; t < n; ++t) workers_[t].go.release();
    done_.acquire();
  }

 private:
  struct Worker {
    std::binary_semaphore go{0};
    std::thread thread;
  };

  void spawn() {
    Worker& w = workers_.emplace_back();
    const unsigned index = static_cast<unsigned>(workers_.size() - 1);
    std::binary_semaphore* go = &w.go;  // the deque may grow under later launches: no indexing here
    w.thread = std::thread([this, go, index] {
      for (;;) {
        go->acquire();
        (*body_)(index);
        if (remaining_.fetch_sub(1) == 1) done_.release();
      }
    });
    w.thread.detach();
  }

  std::mutex launch_mutex_;
  std::deque<Worker> workers_;  // a deque: workers keep their address as it grows
  const std::function<void(unsigned)>* body_ = nullptr;
  std::atomic<unsigned> remaining_{0};
  std::binary_semaphore done_{0};
};

}  // namespace detail

inline unsigned thread_x() { return detail::self.thread; }
inline unsigned block_x() { return detail::self.block_x; }
inline unsigned block_y() { return detail::self.block_y; }
inline unsigned block_dim_x() { return detail::self.block->threads; }
inline unsigned grid_dim_x() { return detail::self.block->grid_x; }
inline float bits_to_float(uint32_t u) { return std::bit_cast<float>(u); }
template <class T>
void atomic_add(T* p, T v) {
  std::atomic_ref<T>(*p).fetch_add(v);
}
inline uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }
inline void sync_block() { detail::barrier(detail::Scope::block); }
inline void sync_warp() { detail::barrier(detail::Scope::warp); }

// Every lane of the warp must call it, as with a full __shfl_xor_sync mask.
template <class T>
T shfl_xor_lanes(T v, int lane_mask) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffle moves at most 8 bytes");
  detail::Warp& w = detail::self.block->warps[detail::self.thread / 32];
  const unsigned lane = detail::self.thread % 32;
  std::memcpy(&w.slots[lane], &v, sizeof v);
  detail::barrier(detail::Scope::warp);
  T out;
  std::memcpy(&out, &w.slots[lane ^ static_cast<unsigned>(lane_mask)], sizeof out);
  detail::barrier(detail::Scope::warp);
  return out;
}
inline float shfl_xor(float v, int lane_mask) { return shfl_xor_lanes(v, lane_mask); }
inline double shfl_xor(double v, int lane_mask) { return shfl_xor_lanes(v, lane_mask); }
inline bool all_lanes(bool p) {
  detail::Warp& w = detail::self.block->warps[detail::self.thread / 32];
  w.slots[detail::self.thread % 32] = p;
  detail::barrier(detail::Scope::warp);
  bool all = true;
  for (const uint64_t slot : w.slots) all = all && slot != 0;
  detail::barrier(detail::Scope::warp);
  return all;
}
// The device's ex2.approx.ftz rounds differently in the last bits; what the
// emulator keeps is its flush of subnormal results to zero.
inline float fast_exp2(float x) {
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}
// A prefetch changes nothing here; it reads the byte, so that one outside
// its tensor faults under AddressSanitizer as a load there would.
inline void prefetch_l2(const void* p) { (void)*static_cast<const volatile unsigned char*>(p); }

template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::self.block->shared);
}

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return static_cast<float>(x); }
template <class T>
T from_float(float x) {
  return T(x);
}

inline void copy16(void* dst, const void* src) {
  if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % 16 != 0)
    detail::fault("copy16 on an address that is not 16-byte aligned");
  std::memcpy(dst, src, 16);
}
inline void copy8(void* dst, const void* src) {
  if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % 8 != 0)
    detail::fault("copy8 on an address that is not 8-byte aligned");
  std::memcpy(dst, src, 8);
}
inline void zero16(void* dst) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0) detail::fault("zero16 on an address that is not 16-byte aligned");
  std::memset(dst, 0, 16);
}

// Runs the grid block after block (in reverse order under
// serial_descending); each block's threads run concurrently on the worker
// pool, or one at a time as fibers of this thread under a serial schedule
// (simt_schedule.hpp).
template <class... Params, class... Args>
int launch(Dim3 grid, Dim3 block, size_t shared_bytes, Stream, void (*kernel)(Params...), Args... args) {
  const unsigned threads = block.x;
  if (threads == 0 || threads % 32 != 0 || block.y != 1 || block.z != 1 || grid.z != 1)
    detail::fault("launch: blocks must be one-dimensional whole warps, grids two-dimensional");
  if (shared_bytes > kMaxSharedBytes) detail::fault("launch: dynamic shared memory above the device limit");
  const Schedule order = schedule();
  const bool descending = order == Schedule::serial_descending;
  std::vector<unsigned char> shared_buffer(shared_bytes + 128);
  unsigned char* shared = shared_buffer.data();
  shared += (128 - reinterpret_cast<uintptr_t>(shared) % 128) % 128;
  for (unsigned i = 0; i < grid.y; ++i) {
    for (unsigned j = 0; j < grid.x; ++j) {
      const unsigned by = descending ? grid.y - 1 - i : i;
      const unsigned bx = descending ? grid.x - 1 - j : j;
      // Poison: 0xff bytes read as NaN in f32 and bf16, so a read of shared
      // memory nobody wrote shows up in the results.
      std::memset(shared, 0xff, shared_bytes);
      detail::Block b;
      b.warps = std::vector<detail::Warp>(threads / 32);  // their shuffle slots serve both schedules
      if (order == Schedule::concurrent) {
        b.barrier = std::make_unique<std::barrier<>>(static_cast<std::ptrdiff_t>(threads));
      } else {
        b.serial = std::make_unique<detail::SerialBlock>(threads, descending);
      }
      b.shared = shared;
      b.shared_bytes = shared_bytes;
      b.threads = threads;
      b.grid_x = grid.x;
      const std::function<void(unsigned)> body = [&](unsigned t) {
        detail::self = {t, bx, by, &b};
        kernel(static_cast<Params>(args)...);
      };
      if (b.serial) {
        b.serial->run(body);
      } else {
        detail::WorkerPool::get().run(threads, body);
      }
    }
  }
  return 0;
}

// The subset of nvcuda::wmma the kernels use, for m16n16k16 tiles. Each
// lane's fragment holds the whole tile; loads and multiplies run per lane,
// stores are made by lane 0 only, so a kernel that reads another lane's
// stored values without sync_warp() first reads stale data here too.
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];
};

namespace detail {
template <class T>
void check_tile_pointer(const T* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) simt::detail::fault("wmma: tile pointer not 32-byte aligned");
  if ((ldm * sizeof(T)) % 16 != 0) simt::detail::fault("wmma: leading dimension not a multiple of 16 bytes");
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, T v) {
  for (T& e : f.x) e = v;
}

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  simt::detail::wmma_collective();
  detail::check_tile_pointer(p, ldm);
  using Frag = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < Frag::rows; ++r)
    for (int c = 0; c < Frag::cols; ++c)
      f.x[r * Frag::cols + c] = std::is_same_v<Layout, col_major> ? p[c * ldm + r] : p[r * ldm + c];
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout) {
  simt::detail::wmma_collective();
  detail::check_tile_pointer(p, ldm);
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) f.x[r * N + c] = layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c];
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  simt::detail::wmma_collective();
  detail::check_tile_pointer(p, ldm);
  if (simt::detail::self.thread % 32 != 0) return;
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * N + c];
}

template <int M, int N, int K, class T, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b, const fragment<accumulator, M, N, K, float>& c) {
  simt::detail::wmma_collective();
  float out[M * N];
  for (int r = 0; r < M; ++r)
    for (int col = 0; col < N; ++col) {
      float acc = c.x[r * N + col];
      for (int k = 0; k < K; ++k) acc += static_cast<float>(a.x[r * K + k]) * static_cast<float>(b.x[k * N + col]);
      out[r * N + col] = acc;
    }
  std::memcpy(d.x, out, sizeof out);
}

}  // namespace wmma

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt

#endif  // __CUDACC__
