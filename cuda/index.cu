// Indexing along a dim: index_select / index_add, gather / scatter.
// Floor: no FLOPs (index_add and scatter-add: one add per element); each
// moves the selected elements once: numel(out or index) * (2 * itemsize +
// index itemsize) bytes. Index values were range-checked by the op.
// index_add and scatter(add) accumulate with atomics (f32, f64, i32, i64), so
// the order of additions into one slot, and the last bits of the result, can
// differ from run to run; a plain scatter with repeated indices keeps one of
// the written values (which one is unspecified). With deterministic
// algorithms on (loom/core/deterministic.hpp), index_add along dim 0 of
// contiguous tensors (the embedding backward) sorts instead: cub's stable
// radix sort of (index, position), then segment_sum.cuh.
#include <climits>

#include <cub/device/device_radix_sort.cuh>

#include "kernels.hpp"
#include "loom/core/deterministic.hpp"
#include "loom/ops/creation.hpp"
#include "loops.cuh"
#include "segment_sum.cuh"

namespace loom::cuda {

namespace {

__device__ __forceinline__ int64_t index_at(const void* p, bool is64, int64_t off) {
  return is64 ? static_cast<const int64_t*>(p)[off] : static_cast<int64_t>(static_cast<const int32_t*>(p)[off]);
}

// out[o] = x[x_rest + index[j] * x_dim_stride]; the indexer yields (out, x_rest, j).
template <class B>
__global__ void index_select_kernel(int64_t n, Indexer<3> ix, const B* x, int64_t x_dim_stride, const void* index,
                                    bool i64, int64_t index_stride, B* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = x[off[1] + index_at(index, i64, off[2] * index_stride) * x_dim_stride];
  }
}

template <class T>
__device__ __forceinline__ void atomic_add(T* p, T v) {
  if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else {
    atomicAdd(p, v);
  }
}

// grad_x[x_rest + index[j] * x_dim_stride] += grad_out[o]; indexer: (grad_out, x_rest, j).
template <class T>
__global__ void index_add_kernel(int64_t n, Indexer<3> ix, const T* g, int64_t x_dim_stride, const void* index,
                                 bool i64, int64_t index_stride, T* gx) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    atomic_add(gx + off[1] + index_at(index, i64, off[2] * index_stride) * x_dim_stride, g[off[0]]);
  }
}

// out[o] = x[x_rest + index[p] * x_dim_stride]; indexer over index.shape: (out, index, x_rest).
template <class B>
__global__ void gather_kernel(int64_t n, Indexer<3> ix, const B* x, int64_t x_dim_stride, const void* index, bool i64,
                              B* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = x[off[2] + index_at(index, i64, off[1]) * x_dim_stride];
  }
}

// out[o_rest + index[p] * o_dim_stride] (+)= src[s]; indexer over index.shape: (src, index, o_rest).
template <class T, bool Add>
__global__ void scatter_kernel(int64_t n, Indexer<3> ix, const T* src, const void* index, bool i64, T* out,
                               int64_t out_dim_stride) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    T* slot = out + off[2] + index_at(index, i64, off[1]) * out_dim_stride;
    if constexpr (Add) atomic_add(slot, src[off[0]]);
    else *slot = src[off[0]];
  }
}

void check_index(const Tensor& index, const char* op) {
  LOOM_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op, ": index must be i64 or i32, got ",
             dtype_name(index.dtype()));
}

template <class B>
void launch_index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix = make_indexer<3>(
      out.shape(), {out.strides(), without_dim(x.strides(), dim), unit_at(out.shape().size(), dim)}, "index_select");
  index_select_kernel<B><<<grid_for(n), kThreads, 0, s>>>(
      n, ix, static_cast<const B*>(x.raw_data()), x.stride(dim), index.raw_data(), index.dtype() == DType::i64,
      index.dim() == 0 ? 0 : index.stride(0), static_cast<B*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("index_select_kernel", shape_str(out.shape()));
}

template <class T>
void launch_index_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx, cudaStream_t s) {
  const int64_t n = g.numel();
  const auto ix = make_indexer<3>(
      g.shape(), {g.strides(), without_dim(gx.strides(), dim), unit_at(g.shape().size(), dim)}, "index_add");
  index_add_kernel<T><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const T*>(g.raw_data()), gx.stride(dim),
                                                       index.raw_data(), index.dtype() == DType::i64,
                                                       index.dim() == 0 ? 0 : index.stride(0),
                                                       static_cast<T*>(gx.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("index_add_kernel", shape_str(g.shape()));
}

// The deterministic index_add: grad_x [rows, inner] += grad_out [n, inner]
// scattered by index [n], each destination row summed in position order.
template <class T>
void index_add_sorted(const Tensor& g, const Tensor& index, const Tensor& gx, cudaStream_t s) {
  const int64_t n = index.numel(), rows = gx.size(0), inner = rows == 0 ? 0 : gx.numel() / rows;
  const TensorOptions i32 = TensorOptions(DType::i32).with_device(gx.device());
  Tensor keys_in = empty({n}, i32), keys = empty({n}, i32), positions_in = empty({n}, i32), positions = empty({n}, i32);
  copy(index.reshape({n}), keys_in);  // in range: the op checked every index against rows
  segment_sum::iota_kernel<<<segment_sum::blocks_for(n, segment_sum::kThreads), segment_sum::kThreads, 0, s>>>(
      static_cast<int32_t*>(positions_in.raw_data()), n);
  LOOM_CUDA_CHECK_LAUNCH("iota_kernel", n);
  int bits = 1;
  while (bits < 31 && (int64_t{1} << bits) < rows) ++bits;  // sort only the bits an index can use
  const auto* k_in = static_cast<const int32_t*>(keys_in.raw_data());
  const auto* v_in = static_cast<const int32_t*>(positions_in.raw_data());
  auto* k_out = static_cast<int32_t*>(keys.raw_data());
  auto* v_out = static_cast<int32_t*>(positions.raw_data());
  size_t scratch_bytes = 0;
  LOOM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, scratch_bytes, k_in, k_out, v_in, v_out, n, 0, bits, s),
                  "index_add (deterministic): ", n, " indices");
  Tensor scratch = empty({static_cast<int64_t>(scratch_bytes) + 1}, TensorOptions(DType::u8).with_device(gx.device()));
  LOOM_CUDA_CHECK(
      cub::DeviceRadixSort::SortPairs(scratch.raw_data(), scratch_bytes, k_in, k_out, v_in, v_out, n, 0, bits, s),
      "index_add (deterministic): ", n, " indices");
  segment_sum::rows_kernel<T><<<segment_sum::blocks_for(n, segment_sum::kWarps), segment_sum::kThreads, 0, s>>>(
      k_out, v_out, n, static_cast<const T*>(g.raw_data()), inner, static_cast<T*>(gx.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("segment_sum rows_kernel", shape_str(g.shape()), " into ", shape_str(gx.shape()));
}

// Whether the deterministic index_add takes this call.
bool sorted_index_add_takes(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
  return dim == 0 && g.is_contiguous() && gx.is_contiguous() && index.dim() <= 1 && gx.size(0) < INT_MAX &&
         index.numel() < INT_MAX && index.numel() == g.size(0);
}

template <class B>
void launch_gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, cudaStream_t s) {
  const int64_t n = index.numel();
  const auto ix = make_indexer<3>(index.shape(), {out.strides(), index.strides(), without_dim(x.strides(), dim)},
                                  "gather");
  gather_kernel<B><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const B*>(x.raw_data()), x.stride(dim),
                                                    index.raw_data(), index.dtype() == DType::i64,
                                                    static_cast<B*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("gather_kernel", shape_str(index.shape()));
}

template <class T, bool Add>
void launch_scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, cudaStream_t s) {
  const int64_t n = index.numel();
  const auto ix = make_indexer<3>(index.shape(), {src.strides(), index.strides(), without_dim(out.strides(), dim)},
                                  "scatter");
  scatter_kernel<T, Add><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const T*>(src.raw_data()),
                                                          index.raw_data(), index.dtype() == DType::i64,
                                                          static_cast<T*>(out.raw_data()), out.stride(dim));
  LOOM_CUDA_CHECK_LAUNCH("scatter_kernel", shape_str(index.shape()));
}

}  // namespace

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  OnDevice on(out, "index_select");
  on.check(x, "index_select", "x");
  on.check(index, "index_select", "index");
  check_index(index, "index_select");
  LOOM_CHECK(x.dtype() == out.dtype() && dim >= 0 && dim < x.dim() && out.dim() == x.dim(),
             "index_select: bad arguments");
  if (out.numel() == 0) return;
  switch (itemsize(x.dtype())) {
    case 1: return launch_index_select<uint8_t>(x, dim, index, out, on.stream);
    case 2: return launch_index_select<uint16_t>(x, dim, index, out, on.stream);
    case 4: return launch_index_select<uint32_t>(x, dim, index, out, on.stream);
    default: return launch_index_select<unsigned long long>(x, dim, index, out, on.stream);
  }
}

void index_add(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x) {
  OnDevice on(grad_x, "index_add");
  on.check(grad_out, "index_add", "grad_out");
  on.check(index, "index_add", "index");
  check_index(index, "index_add");
  LOOM_CHECK(grad_out.dtype() == grad_x.dtype() && dim >= 0 && dim < grad_x.dim() && grad_out.dim() == grad_x.dim(),
             "index_add: bad arguments");
  if (grad_out.numel() == 0) return;
  if (deterministic_algorithms()) {
    LOOM_CHECK(sorted_index_add_takes(grad_out, dim, index, grad_x), "index_add along dim ", dim, " of ",
               shape_str(grad_x.shape()),
               ": no deterministic CUDA kernel (it takes dim 0 of contiguous tensors); turn deterministic "
               "algorithms off (loom::set_deterministic_algorithms, train.deterministic)");
    switch (grad_x.dtype()) {
      case DType::f32: return index_add_sorted<float>(grad_out, index, grad_x, on.stream);
      case DType::f64: return index_add_sorted<double>(grad_out, index, grad_x, on.stream);
      default: LOOM_FAIL("index_add: expected a f32 or f64 tensor, got ", dtype_name(grad_x.dtype()));
    }
  }
  switch (grad_x.dtype()) {
    case DType::f32: return launch_index_add<float>(grad_out, dim, index, grad_x, on.stream);
    case DType::f64: return launch_index_add<double>(grad_out, dim, index, grad_x, on.stream);
    default: LOOM_FAIL("index_add: expected a f32 or f64 tensor, got ", dtype_name(grad_x.dtype()));
  }
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  OnDevice on(out, "gather");
  on.check(x, "gather", "x");
  on.check(index, "gather", "index");
  check_index(index, "gather");
  LOOM_CHECK(x.dtype() == out.dtype() && out.shape() == index.shape() && dim >= 0 && dim < x.dim(),
             "gather: bad arguments");
  if (index.numel() == 0) return;
  switch (itemsize(x.dtype())) {
    case 1: return launch_gather<uint8_t>(x, dim, index, out, on.stream);
    case 2: return launch_gather<uint16_t>(x, dim, index, out, on.stream);
    case 4: return launch_gather<uint32_t>(x, dim, index, out, on.stream);
    default: return launch_gather<unsigned long long>(x, dim, index, out, on.stream);
  }
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add) {
  OnDevice on(out, "scatter");
  on.check(src, "scatter", "src");
  on.check(index, "scatter", "index");
  check_index(index, "scatter");
  LOOM_CHECK(src.dtype() == out.dtype() && dim >= 0 && dim < out.dim(), "scatter: bad arguments");
  if (index.numel() == 0) return;
  if (!add) {
    switch (itemsize(out.dtype())) {
      case 1: return launch_scatter<uint8_t, false>(out, dim, index, src, on.stream);
      case 2: return launch_scatter<uint16_t, false>(out, dim, index, src, on.stream);
      case 4: return launch_scatter<uint32_t, false>(out, dim, index, src, on.stream);
      default: return launch_scatter<unsigned long long, false>(out, dim, index, src, on.stream);
    }
  }
  switch (out.dtype()) {
    case DType::f32: return launch_scatter<float, true>(out, dim, index, src, on.stream);
    case DType::f64: return launch_scatter<double, true>(out, dim, index, src, on.stream);
    case DType::i32: return launch_scatter<int32_t, true>(out, dim, index, src, on.stream);
    case DType::i64: return launch_scatter<int64_t, true>(out, dim, index, src, on.stream);
    default: no_kernel("scatter_add", std::string("dtype ") + dtype_name(out.dtype()));
  }
}

}  // namespace loom::cuda
