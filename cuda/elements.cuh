// Element types and strided indexing for the simt kernels that walk tensors
// of any layout (pointwise_strided.cuh, copy_kernels.cuh) and the plain CUDA
// ones (loops.cuh re-exports them): bf16 and f16 stored as 16 bits with
// conversions bit for bit like the host's, the arithmetic type of each
// storage type, and the Indexer that turns a linear index into per-operand
// offsets. Compiles for the device (nvcc) and for the emulator.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <type_traits>

#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "simt.cuh"

namespace loom::strided {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

// ---------------------------------------------------------------------------
// Element types. bf16 and f16 are stored as their 16 bits; arithmetic on them
// runs in float and rounds back to nearest-even, bit for bit like the host
// conversions in loom/core/dtype.hpp.
// ---------------------------------------------------------------------------
struct Bf16 {
  uint16_t bits;
};
struct Half {
  uint16_t bits;
};

LOOM_SIMT_DEVICE float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }
LOOM_SIMT_DEVICE uint16_t float_to_bf16(float f) {
  const uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN, sign kept
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

LOOM_SIMT_DEVICE float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return bits_to_float(x);
}

LOOM_SIMT_DEVICE uint16_t float_to_half(float f) {
  const uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {                                                // subnormal half (or zero)
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (abs - 0x38000000u) >> 13;
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// The arithmetic type of a storage type.
template <class T> struct ComputeOf { using type = T; };
template <> struct ComputeOf<Bf16> { using type = float; };
template <> struct ComputeOf<Half> { using type = float; };
template <> struct ComputeOf<bool> { using type = uint8_t; };
template <class T> using compute_t = typename ComputeOf<T>::type;

template <class T>
LOOM_SIMT_DEVICE compute_t<T> to_compute(T v) {
  if constexpr (std::is_same_v<T, Bf16>) return bf16_to_float(v.bits);
  else if constexpr (std::is_same_v<T, Half>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, bool>) return static_cast<uint8_t>(v);
  else return v;
}

template <class T>
LOOM_SIMT_DEVICE T from_compute(compute_t<T> v) {
  if constexpr (std::is_same_v<T, Bf16>) return Bf16{float_to_bf16(v)};
  else if constexpr (std::is_same_v<T, Half>) return Half{float_to_half(v)};
  else if constexpr (std::is_same_v<T, bool>) return v != 0;
  else return v;
}

template <class T>
constexpr bool is_float_type_v = std::is_floating_point_v<T> || std::is_same_v<T, Bf16> || std::is_same_v<T, Half>;

// Same-size unsigned type for moving elements as raw bits.
template <size_t Bytes> struct BitsOf;
template <> struct BitsOf<1> { using type = uint8_t; };
template <> struct BitsOf<2> { using type = uint16_t; };
template <> struct BitsOf<4> { using type = uint32_t; };
template <> struct BitsOf<8> { using type = unsigned long long; };

// ---------------------------------------------------------------------------
// Strided offsets. Operands share one shape; dims are merged (innermost
// first, size-1 dims dropped, neighbours merged when every operand lays them
// out back to back), so contiguous and simply broadcast operands need little
// index arithmetic.
// ---------------------------------------------------------------------------
constexpr int kMaxDims = 10;

template <int N>
struct Indexer {
  int ndim = 0;
  bool contiguous = true;  // every operand is unit-stride over the whole range
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims][N] = {};

  LOOM_SIMT_DEVICE void offsets(int64_t i, int64_t (&off)[N]) const {
    if (contiguous) {
      for (int k = 0; k < N; ++k) off[k] = i;
      return;
    }
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = 0; d < ndim; ++d) {
      const int64_t q = i / sizes[d];
      const int64_t r = i - q * sizes[d];
      i = q;
      for (int k = 0; k < N; ++k) off[k] += r * strides[d][k];
    }
  }
};

template <int N>
Indexer<N> make_indexer(const Shape& shape, const std::array<Strides, N>& strides, const char* op) {
  Indexer<N> ix;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 1) continue;
    int64_t st[N];
    for (int k = 0; k < N; ++k) st[k] = strides[k][d];
    if (ix.ndim > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable &= st[k] == ix.strides[ix.ndim - 1][k] * ix.sizes[ix.ndim - 1];
      if (mergeable) {
        ix.sizes[ix.ndim - 1] *= shape[d];
        continue;
      }
    }
    LOOM_CHECK(ix.ndim < kMaxDims, op, ": more than ", kMaxDims, " non-mergeable dims in shape ", shape_str(shape),
               " (the CUDA kernels index at most ", kMaxDims, ")");
    ix.sizes[ix.ndim] = shape[d];
    for (int k = 0; k < N; ++k) ix.strides[ix.ndim][k] = st[k];
    ++ix.ndim;
  }
  ix.contiguous = true;
  if (ix.ndim == 1) {
    for (int k = 0; k < N; ++k) ix.contiguous &= ix.strides[0][k] == 1;
  } else if (ix.ndim > 1) {
    ix.contiguous = false;
  }
  return ix;
}

// The error of a backend entry for a call it has no kernel for (a dtype the
// CPU handles and this backend does not yet).
[[noreturn]] inline void fail_no_kernel(const char* op, const std::string& what) {
  LOOM_FAIL("op ", op, " has no CUDA kernel yet", what.empty() ? "" : " (" + what + ")");
}

// Calls f.template operator()<T>() with T float or double as `t` is f32 or
// f64; any other dtype is an error naming `op`.
template <class F>
void with_f32_or_f64(DType t, const char* op, F&& f) {
  LOOM_CHECK(t == DType::f32 || t == DType::f64, op, ": expected a f32 or f64 tensor, got ", dtype_name(t));
  if (t == DType::f32)
    f.template operator()<float>();
  else
    f.template operator()<double>();
}

// Calls f.template operator()<B>() with B the unsigned type of `bytes` bytes.
template <class F>
void with_bits_of(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: return f.template operator()<uint8_t>();
    case 2: return f.template operator()<uint16_t>();
    case 4: return f.template operator()<uint32_t>();
    default: return f.template operator()<unsigned long long>();
  }
}

// Strides that step 1 along `dim` only (the position along dim as an offset),
// and `s` with dim dropped (0): the indexing kernels' extra operands.
inline Strides unit_at(size_t ndim, int64_t dim) {
  Strides s(ndim, 0);
  s[static_cast<size_t>(dim)] = 1;
  return s;
}

inline Strides without_dim(const Strides& s, int64_t dim) {
  Strides r = s;
  r[static_cast<size_t>(dim)] = 0;
  return r;
}

// A grid-stride loop over [0, n) in simt terms.
#define LOOM_SIMT_GRID_LOOP(i, n)                                                                            \
  for (int64_t i = static_cast<int64_t>(::loom::simt::block_x()) * ::loom::simt::block_dim_x() +              \
                   ::loom::simt::thread_x();                                                                  \
       i < (n); i += static_cast<int64_t>(::loom::simt::grid_dim_x()) * ::loom::simt::block_dim_x())

inline constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks < 1 ? 1 : blocks) : 65536);
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::strided
