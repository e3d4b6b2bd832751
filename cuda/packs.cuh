// 16-byte packs of values (4 f32, 2 f64 or 8 bf16): the unit the
// memory-bound kernels move per thread and access, so that a warp's load is
// one 512-byte transaction run instead of 32 scalar ones. The pointers must be
// aligned to the access (16 bytes for a pack, 16 or 8 for a quad): the
// launchers check that before choosing a packed kernel, or the kernel checks
// a row's start (on_pack_boundary).
#pragma once

#include "simt.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

template <class T>
inline constexpr int kPack = 16 / static_cast<int>(sizeof(T));

template <class T>
struct alignas(16) Pack {
  T v[kPack<T>];
};

template <class T>
LOOM_SIMT_DEVICE Pack<T> load_pack(const T* p, int64_t pack) {
  Pack<T> r;
  copy16(&r, p + pack * kPack<T>);
  return r;
}

template <class T>
LOOM_SIMT_DEVICE void store_pack(T* p, int64_t pack, const Pack<T>& r) {
  copy16(p + pack * kPack<T>, &r);
}

// Whether p starts on a 16-byte boundary (then it can be read in packs).
template <class T>
LOOM_SIMT_DEVICE bool on_pack_boundary(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// f(pack, p, slot) for packs p = first, first + step, ... < packs of `row`,
// four loads issued before their four calls (slot: the pack's place in its
// batch, 0..3), the last up to three loaded together too. The unit of the
// memory-bound walks: one load at a time per thread kept too few bytes in
// flight.
template <class T, class F>
LOOM_SIMT_DEVICE void for_each_pack(const T* row, int64_t packs, int64_t first, int64_t step, F&& f) {
  int64_t p = first;
  for (; p + 3 * step < packs; p += 4 * step) {
    Pack<T> v[4];
    LOOM_SIMT_UNROLL
    for (int u = 0; u < 4; ++u) v[u] = load_pack(row, p + u * step);
    LOOM_SIMT_UNROLL
    for (int u = 0; u < 4; ++u) f(v[u], p + u * step, u);
  }
  if (p < packs) {
    Pack<T> v[3];
    LOOM_SIMT_UNROLL
    for (int u = 0; u < 3; ++u)
      if (p + u * step < packs) v[u] = load_pack(row, p + u * step);
    LOOM_SIMT_UNROLL
    for (int u = 0; u < 3; ++u)
      if (p + u * step < packs) f(v[u], p + u * step, u);
  }
}

// Four values of a 4- or 2-byte type (f32, bf16): one 16- or 8-byte access,
// for kernels that read f32 and bf16 operands in step (four values a lane).
template <class U>
struct alignas(4 * sizeof(U)) Quad {
  U v[4];
};

template <class U>
LOOM_SIMT_DEVICE Quad<U> load_quad(const U* p, int64_t quad) {
  static_assert(sizeof(U) == 4 || sizeof(U) == 2, "quads of 4- or 2-byte values");
  Quad<U> r;
  if constexpr (sizeof(U) == 4)
    copy16(&r, p + quad * 4);
  else
    copy8(&r, p + quad * 4);
  return r;
}

template <class U>
LOOM_SIMT_DEVICE void store_quad(U* p, int64_t quad, const Quad<U>& r) {
  static_assert(sizeof(U) == 4 || sizeof(U) == 2, "quads of 4- or 2-byte values");
  if constexpr (sizeof(U) == 4)
    copy16(p + quad * 4, &r);
  else
    copy8(p + quad * 4, &r);
}

// Whether p is aligned to `bytes` (null counts as aligned: an absent operand).
inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Whether p is 16-byte aligned (null counts as aligned: an absent operand).
inline bool pack_aligned(const void* p) { return aligned_to(p, 16); }

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
