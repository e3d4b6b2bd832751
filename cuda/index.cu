// The indexing entries of the CUDA table: index_select / index_add, gather /
// scatter (kernels and floors in index_kernels.cuh). With deterministic
// algorithms on (loom/core/deterministic.hpp), index_add along dim 0 of
// contiguous tensors (the embedding backward) sorts instead of adding with
// atomics: cub's stable radix sort of (index, position), then segment_sum.cuh.
#include <climits>

#include <cub/device/device_radix_sort.cuh>

#include "index_args.hpp"
#include "kernels.hpp"
#include "loom/core/deterministic.hpp"
#include "loom/ops/creation.hpp"
#include "loops.cuh"
#include "segment_sum.cuh"

namespace loom::cuda {

namespace {

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

}  // namespace

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  OnDevice on(out, "index_select");
  on.check(x, "index_select", "x");
  on.check(index, "index_select", "index");
  index_kernels::run_index_select(x, dim, index, out, on.stream, check_launch);
}

void index_add(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x) {
  OnDevice on(grad_x, "index_add");
  on.check(grad_out, "index_add", "grad_out");
  on.check(index, "index_add", "index");
  index_kernels::check_index_add(grad_out, dim, index, grad_x);
  if (grad_out.numel() == 0) return;
  if (deterministic_algorithms()) {
    LOOM_CHECK(sorted_index_add_takes(grad_out, dim, index, grad_x), "index_add along dim ", dim, " of ",
               shape_str(grad_x.shape()),
               ": no deterministic CUDA kernel (it takes dim 0 of contiguous tensors); turn deterministic "
               "algorithms off (loom::set_deterministic_algorithms, train.deterministic)");
    if (grad_x.dtype() == DType::f32) return index_add_sorted<float>(grad_out, index, grad_x, on.stream);
    return index_add_sorted<double>(grad_out, index, grad_x, on.stream);
  }
  index_kernels::run_index_add(grad_out, dim, index, grad_x, on.stream, check_launch);
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  OnDevice on(out, "gather");
  on.check(x, "gather", "x");
  on.check(index, "gather", "index");
  index_kernels::run_gather(x, dim, index, out, on.stream, check_launch);
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add) {
  OnDevice on(out, "scatter");
  on.check(src, "scatter", "src");
  on.check(index, "scatter", "index");
  index_kernels::run_scatter(out, dim, index, src, add, on.stream, check_launch);
}

}  // namespace loom::cuda
