// Device-side helpers shared by the kernels in cuda/*.cu: strided offset
// computation, element types and their conversions, launch shapes and block
// reductions. Only included from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "kernels/backend.hpp"
#include "runtime.hpp"

namespace loom::cuda {

using kernels::Backend;

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

__device__ __forceinline__ float bf16_to_float(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
__device__ __forceinline__ uint16_t float_to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN, sign kept
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float half_to_float(uint16_t h) {
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
  return __uint_as_float(x);
}

__device__ __forceinline__ uint16_t float_to_half(float f) {
  const uint32_t x = __float_as_uint(f);
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
__device__ __forceinline__ compute_t<T> to_compute(T v) {
  if constexpr (std::is_same_v<T, Bf16>) return bf16_to_float(v.bits);
  else if constexpr (std::is_same_v<T, Half>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, bool>) return static_cast<uint8_t>(v);
  else return v;
}

template <class T>
__device__ __forceinline__ T from_compute(compute_t<T> v) {
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

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
    if (contiguous) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i;
      return;
    }
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = 0; d < ndim; ++d) {
      const int64_t q = i / sizes[d];
      const int64_t r = i - q * sizes[d];
      i = q;
#pragma unroll
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

// Strides of t, or all-zero (a broadcast scalar) for the unit-dim helper.
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

// ---------------------------------------------------------------------------
// Launch shapes.
// ---------------------------------------------------------------------------
constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks < 1 ? 1 : blocks) : 65536);
}

// A grid-stride loop over [0, n).
#define LOOM_GRID_LOOP(i, n)                                                                     \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);         \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Device of the first operand, checked for the others; makes it current.
struct OnDevice {
  Device device;
  DeviceGuard guard;
  cudaStream_t stream;
  explicit OnDevice(const Tensor& first, const char* op)
      : device(first.device()), guard(checked(first, op)), stream(cuda::stream(first.device().index)) {}
  void check(const Tensor& t, const char* op, const char* arg) const { check_on_device(t, device, op, arg); }

 private:
  static int checked(const Tensor& t, const char* op) {
    LOOM_CHECK(t.defined() && t.device().is_cuda(), op, ": expected a CUDA tensor, got one on ",
               t.defined() ? t.device().str() : std::string("(undefined)"));
    return t.device().index;
  }
};

// ---------------------------------------------------------------------------
// Block reductions (blockDim.x a multiple of 32, at most 1024). Every thread
// gets the result. Deterministic: fixed shapes, fixed order.
// ---------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T other = __shfl_down_sync(0xffffffffu, v, o);
    v = (other > v || other != other) && v == v ? other : v;  // NaN wins
  }
  return v;
}

template <class T, bool Max>
__device__ T block_reduce(T v) {
  __shared__ T buf[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // the previous call's readers are done with buf
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>((blockDim.x + 31) >> 5);
    T w = lane < warps ? buf[lane] : buf[0];  // pad with a value that changes neither sum (set below) nor max
    if (!Max && lane >= warps) w = T(0);
    w = Max ? warp_max(w) : warp_sum(w);
    if (lane == 0) buf[0] = w;
  }
  __syncthreads();
  return buf[0];
}

template <class T>
__device__ __forceinline__ T block_sum(T v) { return block_reduce<T, false>(v); }
template <class T>
__device__ __forceinline__ T block_max(T v) { return block_reduce<T, true>(v); }

// Threads for a block that walks one row of n elements.
inline int row_threads(int64_t n) { return n >= 2048 ? 512 : n >= 512 ? 256 : n >= 128 ? 128 : 32; }
inline unsigned row_grid(int64_t rows) { return static_cast<unsigned>(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536); }

}  // namespace loom::cuda
