// Warp-level tensor-core primitives with a documented register layout, for
// kernels that keep their tiles in registers (flash_forward_mma.cuh):
//   mma_bf16_16816  D = A·B + C, A [16 x 16] bf16 row-major, B [16 x 8] bf16
//                   column-major, C and D [16 x 8] f32 (PTX mma.sync
//                   m16n8k16.row.col.f32.bf16.bf16.f32);
//   ldmatrix_x4     four 8 x 8 b16 matrices from shared memory, one row
//                   address per lane (PTX ldmatrix .m8n8.x4), optionally
//                   transposed (.trans);
//   cp_async16      a 16-byte global-to-shared copy that runs behind the
//                   kernel's arithmetic until cp_async_wait_all();
//   pack_bf16x2     two floats rounded into one register, the lower column
//                   in the low half.
// Fragments (lane = 4·g + t; `g` the group, `t` the thread in it):
//   A regs {(g, 2t), (g+8, 2t), (g, 2t+8), (g+8, 2t+8)}, each with the next column;
//   B regs {(k 2t, n g), (k 2t+8, n g)}, each with the next k;
//   C/D    {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
// ldmatrix: lanes 8i..8i+7 name the rows of matrix i; lane l receives in
// register i row l/4, columns 2(l%4) and 2(l%4)+1 of it (of its transpose
// with .trans). An A fragment is thus one ldmatrix of a row-major 16 x 16
// tile, a B fragment pair one of a [8 n x 16 k]·2 tile, or with .trans of a
// [16 k x 8 n]·2 tile.
//
// Under nvcc these are the PTX instructions (sm_80 and newer). On the SIMT
// emulator they are warp collectives through each warp's exchange slots:
// every lane must call them, and ldmatrix checks what the device would fault
// on (16-byte aligned rows inside the block's shared memory). The emulator's
// cp_async16 copies at once, so it cannot show a missing wait.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "simt.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

#if defined(__CUDACC__)

LOOM_SIMT_DEVICE void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // no mma.sync before sm_80; loom builds for sm_80 and sm_90
#endif
}

// ldmatrix and cp.async need sm_80 too; below it they trap like the mma.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
LOOM_SIMT_DEVICE void ldmatrix_x4(uint32_t (&)[4], const void*) { __trap(); }
LOOM_SIMT_DEVICE void ldmatrix_x4_trans(uint32_t (&)[4], const void*) { __trap(); }
LOOM_SIMT_DEVICE void cp_async16(void*, const void*) { __trap(); }
LOOM_SIMT_DEVICE void cp_async_commit() {}
LOOM_SIMT_DEVICE void cp_async_wait_all() {}
#else
LOOM_SIMT_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

LOOM_SIMT_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

LOOM_SIMT_DEVICE void cp_async16(void* shared_dst, const void* global_src) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global_src));
}
LOOM_SIMT_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
LOOM_SIMT_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
#endif

LOOM_SIMT_DEVICE uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

LOOM_SIMT_DEVICE void store_u32(void* p, uint32_t v) { *static_cast<uint32_t*>(p) = v; }

#else  // host emulation

namespace detail {

// The bf16 in the low (half 0) or high half of a register, widened.
inline float bf16_half(uint32_t reg, int half) { return bits_to_float(half == 0 ? reg << 16 : reg & 0xffff0000u); }

inline void check_shared_row(const void* row, const char* op) {
  const auto* p = static_cast<const unsigned char*>(row);
  const Block& b = *self.block;
  if (p < b.shared || p + 16 > b.shared + b.shared_bytes)
    fault((std::string(op) + ": a row outside shared memory").c_str());
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fault((std::string(op) + ": a row not 16-byte aligned").c_str());
}

inline void ldmatrix(uint32_t (&r)[4], const void* row, bool transposed) {
  check_shared_row(row, transposed ? "ldmatrix.trans" : "ldmatrix");
  Warp& w = self.block->warps[self.thread / 32];
  const unsigned lane = self.thread % 32;
  w.slots[lane] = reinterpret_cast<uintptr_t>(row);
  barrier(Scope::warp);
  const auto element = [&](unsigned matrix, unsigned row_in, unsigned col) {
    uint16_t bits;
    std::memcpy(&bits, reinterpret_cast<const unsigned char*>(w.slots[8 * matrix + row_in]) + 2 * col, 2);
    return static_cast<uint32_t>(bits);
  };
  uint32_t out[4];
  for (unsigned i = 0; i < 4; ++i) {
    const unsigned g = lane / 4, t = lane % 4;
    out[i] = transposed ? element(i, 2 * t, g) | element(i, 2 * t + 1, g) << 16
                        : element(i, g, 2 * t) | element(i, g, 2 * t + 1) << 16;
  }
  barrier(Scope::warp);
  std::memcpy(r, out, sizeof out);
}

}  // namespace detail

inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  detail::Warp& w = detail::self.block->warps[detail::self.thread / 32];
  const unsigned lane = detail::self.thread % 32;
  std::memcpy(w.fragments[lane], a, sizeof a);
  w.fragments[lane][4] = b0;
  w.fragments[lane][5] = b1;
  detail::barrier(detail::Scope::warp);
  // A(row, k) and B(k, n) read from the lane and register that hold them.
  const auto a_at = [&](unsigned row, unsigned k) {
    return detail::bf16_half(w.fragments[(row % 8) * 4 + (k % 8) / 2][row / 8 + 2 * (k / 8)], static_cast<int>(k % 2));
  };
  const auto b_at = [&](unsigned k, unsigned n) {
    return detail::bf16_half(w.fragments[n * 4 + (k % 8) / 2][4 + k / 8], static_cast<int>(k % 2));
  };
  float out[4];
  const unsigned g = lane / 4, t = lane % 4;
  for (unsigned e = 0; e < 4; ++e) {
    const unsigned row = g + 8 * (e / 2), col = 2 * t + e % 2;
    float acc = c[e];
    for (unsigned k = 0; k < 16; ++k) acc += a_at(row, k) * b_at(k, col);
    out[e] = acc;
  }
  detail::barrier(detail::Scope::warp);
  std::memcpy(c, out, sizeof out);
}

inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) { detail::ldmatrix(r, row, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) { detail::ldmatrix(r, row, true); }

// The emulator copies at once; the wait that orders the copy on the device
// is then trivially met.
inline void cp_async16(void* shared_dst, const void* global_src) { copy16(shared_dst, global_src); }
inline void cp_async_commit() {}
inline void cp_async_wait_all() {}

inline uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(bf16(lo).bits) | static_cast<uint32_t>(bf16(hi).bits) << 16;
}

inline void store_u32(void* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

#endif  // __CUDACC__

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
