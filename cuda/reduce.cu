// sum / max / argmax over the middle axis of a contiguous [outer, r, inner].
// Floor: reads numel * itemsize bytes once, writes outer * inner outputs;
// numel adds or compares. Memory-bound.
//
// A block owns one outer index and a tile of up to 32 inner columns; its
// threads split the r axis (blockDim.y) and combine through shared memory in a
// fixed tree, so results are deterministic. Sums accumulate in double, as on
// the CPU. max/argmax keep the first maximal index; NaN counts as the maximum
// (the first NaN wins), as on the CPU.
#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

namespace {

constexpr int kReduceThreads = 256;

template <class T>
struct Best {
  T v;
  int64_t k;  // -1: no element seen
};

// Is (v, k) better than b? Lower index breaks ties; NaN beats everything.
template <class T>
__device__ __forceinline__ bool better(T v, int64_t k, const Best<T>& b) {
  if (k < 0) return false;
  if (b.k < 0) return true;
  const bool vn = v != v, bn = b.v != b.v;
  if (vn || bn) return vn && (!bn || k < b.k);
  if (v != b.v) return v > b.v;
  return k < b.k;
}

template <class T, int Op>  // Op: 0 sum, 1 max, 2 argmax
__global__ void reduce_kernel(const T* x, int64_t outer, int64_t r, int64_t inner, int64_t tiles_per_outer, T* out,
                              int64_t* out_index) {
  __shared__ double sums[kReduceThreads];
  __shared__ T vals[kReduceThreads];
  __shared__ int64_t idxs[kReduceThreads];
  const int bx = blockDim.x, by = blockDim.y;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int slot = ty * bx + tx;
  for (int64_t tile = blockIdx.x; tile < outer * tiles_per_outer; tile += gridDim.x) {
    const int64_t a = tile / tiles_per_outer;
    const int64_t c = (tile - a * tiles_per_outer) * bx + tx;
    const bool active = c < inner;
    const T* p = x + a * r * inner + c;
    if (Op == 0) {
      double acc = 0;
      if (active)
        for (int64_t k = ty; k < r; k += by) acc += static_cast<double>(p[k * inner]);
      sums[slot] = acc;
    } else {
      Best<T> best{T(0), -1};
      if (active)
        for (int64_t k = ty; k < r; k += by) {
          const T v = p[k * inner];
          if (better(v, k, best)) best = Best<T>{v, k};
        }
      vals[slot] = best.v;
      idxs[slot] = best.k;
    }
    __syncthreads();
    for (int half = by / 2; half > 0; half /= 2) {
      if (ty < half) {
        const int other = (ty + half) * bx + tx;
        if (Op == 0) {
          sums[slot] += sums[other];
        } else if (better(vals[other], idxs[other], Best<T>{vals[slot], idxs[slot]})) {
          vals[slot] = vals[other];
          idxs[slot] = idxs[other];
        }
      }
      __syncthreads();
    }
    if (ty == 0 && active) {
      if (Op == 0) out[a * inner + c] = static_cast<T>(sums[tx]);
      else if (Op == 1) out[a * inner + c] = vals[tx];
      else out_index[a * inner + c] = idxs[tx];
    }
    __syncthreads();  // the shared arrays are reused by the next tile
  }
}

template <class T>
void launch_reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
                   cudaStream_t s) {
  int bx = 1;
  while (bx < 32 && bx < inner) bx *= 2;
  const int by = kReduceThreads / bx;
  const int64_t tiles_per_outer = (inner + bx - 1) / bx;
  const int64_t tiles = outer * tiles_per_outer;
  const unsigned grid = static_cast<unsigned>(tiles < 65536 ? tiles : 65536);
  const dim3 block(static_cast<unsigned>(bx), static_cast<unsigned>(by));
  const T* xp = static_cast<const T*>(x.raw_data());
  switch (op) {
    case Reduce::sum:
      reduce_kernel<T, 0><<<grid, block, 0, s>>>(xp, outer, r, inner, tiles_per_outer, static_cast<T*>(out.raw_data()),
                                                 nullptr);
      break;
    case Reduce::max:
      reduce_kernel<T, 1><<<grid, block, 0, s>>>(xp, outer, r, inner, tiles_per_outer, static_cast<T*>(out.raw_data()),
                                                 nullptr);
      break;
    case Reduce::argmax:
      reduce_kernel<T, 2><<<grid, block, 0, s>>>(xp, outer, r, inner, tiles_per_outer, nullptr,
                                                 static_cast<int64_t*>(out.raw_data()));
      break;
  }
  LOOM_CUDA_CHECK_LAUNCH("reduce_kernel", "[", outer, ", ", r, ", ", inner, "] ", dtype_name(x.dtype()));
}

}  // namespace

void reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out) {
  OnDevice on(out, "reduce");
  on.check(x, "reduce", "x");
  LOOM_CHECK(x.is_contiguous(), "reduce: x must be contiguous");
  LOOM_CHECK(out.is_contiguous(), "reduce: out must be contiguous");
  LOOM_CHECK(x.numel() == outer * r * inner && out.numel() == outer * inner, "reduce: [", outer, ", ", r, ", ", inner,
             "] does not match x ", shape_str(x.shape()), " / out ", shape_str(out.shape()));
  LOOM_CHECK(op == Reduce::argmax ? out.dtype() == DType::i64 : out.dtype() == x.dtype(),
             "reduce: output dtype ", dtype_name(out.dtype()), " for input ", dtype_name(x.dtype()));
  if (outer * inner == 0) return;
  LOOM_CHECK(r > 0, "reduce: empty reduction axis");
  switch (x.dtype()) {
    case DType::f32: return launch_reduce<float>(op, x, outer, r, inner, out, on.stream);
    case DType::f64: return launch_reduce<double>(op, x, outer, r, inner, out, on.stream);
    default: LOOM_FAIL("reduce: expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
  }
}

}  // namespace loom::cuda
