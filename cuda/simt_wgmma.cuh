// Hopper's warpgroup tensor-core products (PTX wgmma, sm_90a), for kernels
// whose operands sit in shared memory in the canonical layouts without
// swizzle (flash_forward_wgmma.cuh):
//   wgmma_descriptor  the 64-bit shared-memory matrix descriptor: the
//                     matrix's start, its leading and stride byte offsets,
//                     no swizzle;
//   wgmma_ss<N>       D[64 x N] (+)= A[64 x 16] · B[16 x N], bf16 in, f32
//                     accumulators; A and B K-major in shared memory;
//   wgmma_rs_nmajor<N> the same with A from registers and B N-major in
//                     shared memory;
//   wgmma_fence, wgmma_commit, wgmma_wait<k>: the issue and completion
//                     protocol (fence before products that read registers
//                     written since, commit the issued products as a group,
//                     wait until at most k groups are in flight);
//   fence_async_shared  makes this thread's shared-memory writes (plain
//                     stores, cp.async) visible to the tensor cores' reads.
// Every thread of a warpgroup (four consecutive warps, 128 threads) calls
// each of them with the same descriptors.
//
// Layouts (bf16; a core matrix is 8 rows of 16 contiguous bytes, 128 bytes):
//   K-major    element (row r, k) at start + (r/8)·SBO + (r%8)·16
//              + (k/8)·LBO + (k%8)·2: rows of K contiguous, as q [rows x D]
//              and k [keys x D] sit (PTX canonical ((8,m),(T,2k)):((1T,SBO),(1,LBO)));
//   N-major    element (n, k) at start + (n/8)·SBO + (n%8)·2 + (k/8)·LBO
//              + (k%8)·16: rows of N contiguous, as v [keys x D] sits for
//              P·v (((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))).
// Accumulator D, per warp w of the warpgroup (rows 16w..16w+15), lane
// 4g + t: d[j][e] is row 16w + g + 8(e/2), column 8j + 2t + e%2, so each
// [16 x 8] column tile j has mma.sync's C layout (simt_mma.cuh). A from
// registers likewise has mma.sync's A layout on each warp's 16 rows.
//
// Under nvcc, for sm_90a, these are the PTX instructions; built for any other
// target they trap (the kernels that use them are launched only on a 9.0
// device by a build that has sm_90a code). On the SIMT emulator a product is
// computed when it is issued, from each operand read through the descriptor
// exactly as the layouts above say, with every element checked to lie inside
// the block's shared memory; a warp whose lanes pass different descriptors
// faults (the four warps of a warpgroup are not compared with each other). The emulator cannot show a missing fence or wait (its products are
// done at once), nor shared memory overwritten while a product reads it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "simt_mma.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

#if defined(__CUDACC__)

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LOOM_SIMT_WGMMA 1
#endif

LOOM_SIMT_DEVICE uint64_t wgmma_descriptor(const void* shared, uint32_t leading_bytes, uint32_t stride_bytes) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32;  // bits 62-63: 0, no swizzle
}

#if defined(LOOM_SIMT_WGMMA)
LOOM_SIMT_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
LOOM_SIMT_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kInFlight>
LOOM_SIMT_DEVICE void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kInFlight) : "memory");
}
LOOM_SIMT_DEVICE void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#else
LOOM_SIMT_DEVICE void wgmma_fence() { __trap(); }
LOOM_SIMT_DEVICE void wgmma_commit() { __trap(); }
template <int kInFlight>
LOOM_SIMT_DEVICE void wgmma_wait() {
  __trap();
}
LOOM_SIMT_DEVICE void fence_async_shared() { __trap(); }
#endif

// Keeps the compiler from moving reads or writes of an accumulator across
// the products in flight on it: a product writes its registers when it
// completes, which the compiler does not see.
template <int kTiles>
LOOM_SIMT_DEVICE void wgmma_pin(float (&d)[kTiles][4]) {
  LOOM_SIMT_UNROLL
  for (int j = 0; j < kTiles; ++j)
    LOOM_SIMT_UNROLL
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
}
LOOM_SIMT_DEVICE void wgmma_pin(uint32_t (&a)[4]) {
  LOOM_SIMT_UNROLL
  for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[e])::"memory");
}

#define LOOM_WGMMA_ACC4(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define LOOM_WGMMA_ACC32 \
  LOOM_WGMMA_ACC4(0), LOOM_WGMMA_ACC4(1), LOOM_WGMMA_ACC4(2), LOOM_WGMMA_ACC4(3), LOOM_WGMMA_ACC4(4), \
      LOOM_WGMMA_ACC4(5), LOOM_WGMMA_ACC4(6), LOOM_WGMMA_ACC4(7)
#define LOOM_WGMMA_ACC64 \
  LOOM_WGMMA_ACC32, LOOM_WGMMA_ACC4(8), LOOM_WGMMA_ACC4(9), LOOM_WGMMA_ACC4(10), LOOM_WGMMA_ACC4(11), \
      LOOM_WGMMA_ACC4(12), LOOM_WGMMA_ACC4(13), LOOM_WGMMA_ACC4(14), LOOM_WGMMA_ACC4(15)
#define LOOM_WGMMA_REGS32                                                                                        \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31"
#define LOOM_WGMMA_REGS64                                                                                       \
  LOOM_WGMMA_REGS32                                                                                             \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, " \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// D (+)= A·B, A and B K-major in shared memory; D = A·B when !accumulate.
template <int N>
LOOM_SIMT_DEVICE void wgmma_ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_ss: N 64 or 128");
#if defined(LOOM_SIMT_WGMMA)
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (N == 64) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" LOOM_WGMMA_REGS32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : LOOM_WGMMA_ACC32
        : "l"(a), "l"(b), "r"(scale_d));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" LOOM_WGMMA_REGS64 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : LOOM_WGMMA_ACC64
        : "l"(a), "l"(b), "r"(scale_d));
  }
#else
  (void)d, (void)a, (void)b, (void)accumulate;
  __trap();
#endif
}

// D (+)= A·B, A's fragment in registers (mma.sync's A layout per warp), B
// N-major in shared memory.
template <int N>
LOOM_SIMT_DEVICE void wgmma_rs_nmajor(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_rs_nmajor: N 64 or 128");
#if defined(LOOM_SIMT_WGMMA)
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (N == 64) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" LOOM_WGMMA_REGS32
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : LOOM_WGMMA_ACC32
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" LOOM_WGMMA_REGS64
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : LOOM_WGMMA_ACC64
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));
  }
#else
  (void)d, (void)a, (void)b, (void)accumulate;
  __trap();
#endif
}

#undef LOOM_WGMMA_ACC4
#undef LOOM_WGMMA_ACC32
#undef LOOM_WGMMA_ACC64
#undef LOOM_WGMMA_REGS32
#undef LOOM_WGMMA_REGS64

#else  // host emulation

namespace detail {

struct Descriptor {
  size_t start, leading, stride;  // bytes: the matrix's offset in shared memory, LBO, SBO
};

inline Descriptor decode(uint64_t desc) {
  if (desc >> 62 != 0) fault("wgmma: a descriptor with a swizzle mode (the emulator knows none)");
  return {static_cast<size_t>(desc & 0x3FFF) << 4, static_cast<size_t>((desc >> 16) & 0x3FFF) << 4,
          static_cast<size_t>((desc >> 32) & 0x3FFF) << 4};
}

// Element (row, k) of a K-major operand, or (n = row, k) of an N-major one.
inline float operand(const Descriptor& m, unsigned row, unsigned k, bool k_major) {
  const size_t at = k_major ? m.start + (row / 8) * m.stride + (row % 8) * 16 + (k / 8) * m.leading + (k % 8) * 2
                            : m.start + (row / 8) * m.stride + (row % 8) * 2 + (k / 8) * m.leading + (k % 8) * 16;
  const Block& b = *self.block;
  if (at + 2 > b.shared_bytes) fault("wgmma: an operand element outside shared memory");
  uint16_t bits;
  std::memcpy(&bits, b.shared + at, 2);
  return bits_to_float(static_cast<uint32_t>(bits) << 16);
}

// The descriptors every lane of the warp passed must be the same.
inline void check_uniform(uint64_t desc) {
  Warp& w = self.block->warps[self.thread / 32];
  const unsigned lane = self.thread % 32;
  w.slots[lane] = desc;
  barrier(Scope::warp);
  for (const uint64_t other : w.slots)
    if (other != desc) fault("wgmma: the lanes of a warp passed different descriptors");
  barrier(Scope::warp);
}

inline void check_warpgroup() {
  if (self.block->threads % 128 != 0) fault("wgmma: a block that is not whole warpgroups (128 threads)");
}

// d[j][e] (+)= Σ_k A(row, k) B(k, col) over this lane's accumulator elements;
// a(row, k) reads A. The lane's two rows of A and 2·kTiles columns of B are
// read once each.
template <int kTiles, class ReadA>
void product(float (&d)[kTiles][4], ReadA&& a, const Descriptor& b, bool b_k_major, bool accumulate) {
  const unsigned warp = (self.thread / 32) % 4, lane = self.thread % 32, g = lane / 4, t = lane % 4;
  float rows[2][16], cols[kTiles][2][16];
  for (unsigned r = 0; r < 2; ++r)
    for (unsigned k = 0; k < 16; ++k) rows[r][k] = a(16 * warp + g + 8 * r, k);
  for (unsigned j = 0; j < static_cast<unsigned>(kTiles); ++j)
    for (unsigned c = 0; c < 2; ++c)
      for (unsigned k = 0; k < 16; ++k) cols[j][c][k] = operand(b, 8 * j + 2 * t + c, k, b_k_major);
  for (unsigned j = 0; j < static_cast<unsigned>(kTiles); ++j)
    for (unsigned e = 0; e < 4; ++e) {
      float acc = accumulate ? d[j][e] : 0.0f;
      for (unsigned k = 0; k < 16; ++k) acc += rows[e / 2][k] * cols[j][e % 2][k];
      d[j][e] = acc;
    }
}

}  // namespace detail

inline uint64_t wgmma_descriptor(const void* shared, uint32_t leading_bytes, uint32_t stride_bytes) {
  const detail::Block& b = *detail::self.block;
  const auto* p = static_cast<const unsigned char*>(shared);
  if (p < b.shared || p >= b.shared + b.shared_bytes) detail::fault("wgmma_descriptor: a matrix outside shared memory");
  const auto offset = static_cast<uint64_t>(p - b.shared);
  if (offset % 16 != 0 || leading_bytes % 16 != 0 || stride_bytes % 16 != 0)
    detail::fault("wgmma_descriptor: a start or an offset that is not a multiple of 16 bytes");
  if (offset >= (1u << 18) || leading_bytes >= (1u << 18) || stride_bytes >= (1u << 18))
    detail::fault("wgmma_descriptor: a start or an offset beyond the descriptor's 18 bits");
  return offset >> 4 | static_cast<uint64_t>(leading_bytes >> 4) << 16 | static_cast<uint64_t>(stride_bytes >> 4) << 32;
}

// The emulator's products are done when issued: the protocol has nothing to wait for.
inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int kInFlight>
void wgmma_wait() {}
inline void fence_async_shared() {}
template <int kTiles>
void wgmma_pin(float (&)[kTiles][4]) {}
inline void wgmma_pin(uint32_t (&)[4]) {}

template <int N>
void wgmma_ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_ss: N 64 or 128");
  detail::check_warpgroup();
  detail::check_uniform(a);
  detail::check_uniform(b);
  const detail::Descriptor ma = detail::decode(a), mb = detail::decode(b);
  detail::product(d, [&](unsigned row, unsigned k) { return detail::operand(ma, row, k, true); }, mb, true,
                  accumulate);
}

template <int N>
void wgmma_rs_nmajor(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_rs_nmajor: N 64 or 128");
  detail::check_warpgroup();
  detail::check_uniform(b);
  detail::Warp& w = detail::self.block->warps[detail::self.thread / 32];
  const unsigned lane = detail::self.thread % 32;
  std::memcpy(w.fragments[lane], a, sizeof a);
  detail::barrier(detail::Scope::warp);
  // A(row, k) of this warp's 16 rows, from the lane and register that hold it
  // (mma.sync's A layout).
  const unsigned warp_row0 = 16 * ((detail::self.thread / 32) % 4);
  const auto a_at = [&](unsigned row, unsigned k) {
    const unsigned r = row - warp_row0;
    return detail::bf16_half(w.fragments[(r % 8) * 4 + (k % 8) / 2][r / 8 + 2 * (k / 8)], static_cast<int>(k % 2));
  };
  const detail::Descriptor mb = detail::decode(b);
  detail::product(d, a_at, mb, false, accumulate);
  detail::barrier(detail::Scope::warp);
}

#endif  // __CUDACC__

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
