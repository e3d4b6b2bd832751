// The tensor side of the reduction kernels (reduce.cuh), shared by the device
// entry (reduce.cu) and the host emulation: the checks, the plan (columns per
// block, how r is cut), the partials' workspace and the launches.
// check(status, what) reports a failed launch.
#pragma once

#include "kernels/backend.hpp"
#include "loom/core/error.hpp"
#include "loom/ops/creation.hpp"
#include "reduce.cuh"

namespace loom::reduce_kernels {
inline namespace LOOM_SIMT_ABI {

// Enough blocks to fill a large GPU several times over (an H200 holds 8
// blocks of 256 threads on each of its 132 SMs; 512 blocks summed 64M floats
// at 29% of the copy rate); below that many tiles a long r is cut into spans
// of at least kMinSpanRows per block row.
inline constexpr int64_t kTargetBlocks = 2048, kMinSpanRows = 64, kMaxGrid = 65536;
// Above this many spans per output a block combines each output's partials;
// at or below, a thread does (a block per output would leave most idle).
inline constexpr int64_t kBlockCombineSpans = 64;
inline constexpr int64_t kSpanAlign = 16;  // elements: a whole number of 16-byte packs of f32 and f64

struct Plan {
  int columns;
  int64_t tiles_per_outer, spans, span;
};

// force_spans > 0 fixes the number of spans (tests).
inline Plan plan_for(int64_t outer, int64_t r, int64_t inner, int64_t force_spans) {
  Plan p{1, 0, 1, r};
  while (p.columns < 32 && p.columns < inner) p.columns *= 2;
  p.tiles_per_outer = (inner + p.columns - 1) / p.columns;
  const int64_t tiles = outer * p.tiles_per_outer, rows = kThreads / p.columns;
  int64_t spans = 1;
  if (force_spans > 0) {
    spans = force_spans;
  } else if (tiles < kTargetBlocks) {
    const int64_t wanted = (kTargetBlocks + tiles - 1) / tiles, most = r / (rows * kMinSpanRows);
    spans = wanted < most ? wanted : most;
  }
  if (spans < 1) spans = 1;
  if (spans > r) spans = r;
  p.span = (r + spans - 1) / spans;
  // Contiguous spans (inner == 1) start on a 16-byte boundary when the row
  // does: the kernel then reads them in packs.
  if (inner == 1 && spans > 1 && force_spans == 0) p.span = (p.span + kSpanAlign - 1) / kSpanAlign * kSpanAlign;
  p.spans = (r + p.span - 1) / p.span;  // no empty span
  return p;
}

inline unsigned grid_for(int64_t work) { return static_cast<unsigned>(work < kMaxGrid ? work : kMaxGrid); }

template <class T, int Kind, class Check>
void launch(const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out, int64_t force_spans,
            Stream stream, Check& check) {
  const Plan p = plan_for(outer, r, inner, force_spans);
  Reduction<T> a{static_cast<const T*>(x.raw_data()), outer, r, inner, p.columns, p.tiles_per_outer, p.spans, p.span,
                 0, nullptr, nullptr, nullptr, nullptr, nullptr};
  if (Kind == kArgmax)
    a.out_index = static_cast<int64_t*>(out.raw_data());
  else
    a.out = static_cast<T*>(out.raw_data());
  Tensor partial_sum, partial_value, partial_index;  // live until the kernels have run (stream order)
  if (p.spans > 1) {
    const int64_t n = outer * inner * p.spans;
    const Device d = x.device();
    if (Kind == kSum) {
      partial_sum = empty({n}, TensorOptions(DType::f64).with_device(d));
      a.partial_sum = static_cast<double*>(partial_sum.raw_data());
    } else {
      partial_value = empty({n}, TensorOptions(x.dtype()).with_device(d));
      partial_index = empty({n}, TensorOptions(DType::i64).with_device(d));
      a.partial_value = static_cast<T*>(partial_value.raw_data());
      a.partial_index = static_cast<int64_t*>(partial_index.raw_data());
    }
  }
  a.blocks = grid_for(outer * p.tiles_per_outer * p.spans);
  check(simt::launch(Dim3(a.blocks), Dim3(kThreads), kSharedBytes, stream, reduce_kernel<T, Kind>, a), "reduce");
  if (p.spans > 1) {
    if (p.spans > kBlockCombineSpans) {
      a.blocks = grid_for(outer * inner);
      check(simt::launch(Dim3(a.blocks), Dim3(kThreads), kSharedBytes, stream, combine_spans_block_kernel<T, Kind>, a),
            "reduce (combining spans)");
    } else {
      a.blocks = grid_for((outer * inner + kThreads - 1) / kThreads);
      check(simt::launch(Dim3(a.blocks), Dim3(kThreads), 0, stream, combine_spans_kernel<T, Kind>, a),
            "reduce (combining spans)");
    }
  }
}

template <class T, class Check>
void launch_op(kernels::Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
               int64_t force_spans, Stream stream, Check& check) {
  switch (op) {
    case kernels::Reduce::sum: return launch<T, kSum>(x, outer, r, inner, out, force_spans, stream, check);
    case kernels::Reduce::max: return launch<T, kMax>(x, outer, r, inner, out, force_spans, stream, check);
    case kernels::Reduce::argmax: return launch<T, kArgmax>(x, outer, r, inner, out, force_spans, stream, check);
  }
}

// The Backend::reduce entry after its device checks.
template <class Check>
void run(kernels::Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
         Stream stream, Check&& check, int64_t force_spans = 0) {
  LOOM_CHECK(x.is_contiguous(), "reduce: x must be contiguous");
  LOOM_CHECK(out.is_contiguous(), "reduce: out must be contiguous");
  LOOM_CHECK(x.numel() == outer * r * inner && out.numel() == outer * inner, "reduce: [", outer, ", ", r, ", ", inner,
             "] does not match x ", shape_str(x.shape()), " / out ", shape_str(out.shape()));
  LOOM_CHECK(op == kernels::Reduce::argmax ? out.dtype() == DType::i64 : out.dtype() == x.dtype(),
             "reduce: output dtype ", dtype_name(out.dtype()), " for input ", dtype_name(x.dtype()));
  if (outer * inner == 0) return;
  LOOM_CHECK(r > 0, "reduce: empty reduction axis");
  if (x.dtype() == DType::f32)
    launch_op<float>(op, x, outer, r, inner, out, force_spans, stream, check);
  else if (x.dtype() == DType::f64)
    launch_op<double>(op, x, outer, r, inner, out, force_spans, stream, check);
  else
    LOOM_FAIL("reduce: expected a f32 or f64 tensor, got ", dtype_name(x.dtype()));
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::reduce_kernels
