// Multi-tensor kernels: one launch updates or reduces many tensors (the
// structure of Apex's multi_tensor_apply and PyTorch's _foreach ops). A model
// has a few hundred parameter tensors, many of them small (biases, norms);
// one launch per tensor costs more in launch latency than the work, and a
// host read per tensor (the gradient norm) stalls the device each time.
//
// A launch takes a Batch: up to kMaxTensors tensors (pointers and sizes in
// the kernel's parameters, no copy to the device), cut into kChunk-element
// chunks, one block per chunk, up to kMaxBlocks blocks; `for_each_batch`
// plans the batches, splitting a tensor across launches when it must.
//
// Floors: AdamW ~12 FLOPs per element, reads 4 and writes 3 f32 arrays (28
// bytes per element; 30 with the parameter's bf16 copy); the sum of squares reads 4 bytes per element. Both are
// memory-bound.
//
// Compiles under nvcc (multi_tensor.cu) and on the host SIMT emulator
// (emulated_tiles.cpp, tests), like flash_attention.cuh.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "elements.cuh"
#include "simt.cuh"

namespace loom::multi_tensor {
inline namespace LOOM_SIMT_ABI {

using namespace loom::simt;

inline constexpr int kThreads = 256;
inline constexpr int64_t kChunk = 16384;  // elements per block
inline constexpr int kMaxTensors = 24;
inline constexpr int kMaxBlocks = 320;

// N pointer lists (AdamW: param, grad, exp_avg, exp_avg_sq and the bf16
// copy or null; a reduction: x). Under 4 KiB, the kernel parameter limit.
template <int N>
struct Batch {
  void* ptr[N][kMaxTensors];
  int64_t size[kMaxTensors];
  uint8_t tensor_of[kMaxBlocks];
  int32_t chunk_of[kMaxBlocks];
  int64_t first_block;  // blocks of earlier batches (where a reduction's partials go)
};
static_assert(sizeof(Batch<5>) <= 4096, "a Batch must fit the kernel parameter space");

// Calls launch(batch, blocks) for every batch covering `tensors` (per tensor:
// its N pointers and its element count). Empty tensors are skipped. Returns
// the total number of blocks.
template <int N, class Launch>
int64_t for_each_batch(const std::vector<std::array<void*, N>>& tensors, const std::vector<int64_t>& sizes,
                       Launch&& launch) {
  Batch<N> b{};
  int slots = 0, blocks = 0;
  const auto flush = [&] {
    if (blocks > 0) launch(b, blocks);
    b.first_block += blocks;
    blocks = 0;
    slots = 0;
  };
  const auto place = [&](size_t t) {
    for (int k = 0; k < N; ++k) b.ptr[k][slots] = tensors[t][k];
    b.size[slots] = sizes[t];
    return slots++;
  };
  for (size_t t = 0; t < tensors.size(); ++t) {
    if (sizes[t] == 0) continue;
    if (slots == kMaxTensors) flush();
    int slot = place(t);
    const int64_t chunks = (sizes[t] + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (blocks == kMaxBlocks) {
        flush();
        slot = place(t);  // the rest of this tensor goes on in the next batch
      }
      b.tensor_of[blocks] = static_cast<uint8_t>(slot);
      b.chunk_of[blocks] = static_cast<int32_t>(c);
      ++blocks;
    }
  }
  flush();
  return b.first_block;
}

// The elements [begin, end) of this block's chunk, and its tensor's slot.
struct ChunkRange {
  int slot;
  int64_t begin, end;
};
template <int N>
LOOM_SIMT_DEVICE ChunkRange chunk_range(const Batch<N>& b) {
  const int slot = b.tensor_of[block_x()];
  const int64_t begin = static_cast<int64_t>(b.chunk_of[block_x()]) * kChunk;
  const int64_t end = begin + kChunk < b.size[slot] ? begin + kChunk : b.size[slot];
  return {slot, begin, end};
}

// The AdamW update's constants, as src/cpu/optimizer.cpp computes them.
struct AdamWConsts {
  float b1, b2, decay, step, inv_bc2, eps;
};

LOOM_SIMT_GLOBAL void adamw_kernel(Batch<5> b, AdamWConsts c) {
  const ChunkRange r = chunk_range(b);
  float* p = static_cast<float*>(b.ptr[0][r.slot]);
  const float* g = static_cast<const float*>(b.ptr[1][r.slot]);
  float* m = static_cast<float*>(b.ptr[2][r.slot]);
  float* v = static_cast<float*>(b.ptr[3][r.slot]);
  uint16_t* h = static_cast<uint16_t*>(b.ptr[4][r.slot]);  // the bf16 copy, or null
  // Four elements per pass, their sixteen loads issued before any update:
  // one element at a time left an H200 at under half its copy rate.
  for (int64_t i0 = r.begin + thread_x(); i0 < r.end; i0 += 4 * kThreads) {
    float gs[4], ms[4], vs[4], ps[4];
    for (int u = 0; u < 4; ++u) {
      const int64_t i = i0 + u * kThreads;
      const bool in = i < r.end;
      gs[u] = in ? g[i] : 0.0f;
      ms[u] = in ? m[i] : 0.0f;
      vs[u] = in ? v[i] : 0.0f;
      ps[u] = in ? p[i] : 0.0f;
    }
    for (int u = 0; u < 4; ++u) {
      const int64_t i = i0 + u * kThreads;
      if (i >= r.end) continue;
      const float gi = gs[u];
      const float mi = c.b1 * ms[u] + (1.0f - c.b1) * gi;
      const float vi = c.b2 * vs[u] + (1.0f - c.b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float pi = ps[u] * c.decay - c.step * mi / (sqrtf(vi) * c.inv_bc2 + c.eps);
      p[i] = pi;
      if (h != nullptr) h[i] = strided::float_to_bf16(pi);  // as the cast rounds
    }
  }
}

// A block's double partial sum, reduced in a fixed order (deterministic).
LOOM_SIMT_DEVICE double block_sum(double x) {
  double* s = dynamic_shared<double>();
  s[thread_x()] = x;
  sync_block();
  for (unsigned stride = kThreads / 2; stride > 0; stride /= 2) {
    if (thread_x() < stride) s[thread_x()] += s[thread_x() + stride];
    sync_block();
  }
  return s[0];
}

// partials[first_block + block] = Σ x² over the block's chunk, in double.
LOOM_SIMT_GLOBAL void sum_squares_kernel(Batch<1> b, double* partials) {
  const ChunkRange r = chunk_range(b);
  const float* x = static_cast<const float*>(b.ptr[0][r.slot]);
  double acc = 0;
  for (int64_t i = r.begin + thread_x(); i < r.end; i += kThreads) acc += static_cast<double>(x[i]) * x[i];
  const double total = block_sum(acc);
  if (thread_x() == 0) partials[b.first_block + block_x()] = total;
}

// out[0] = Σ partials[0 .. n), one block.
LOOM_SIMT_GLOBAL void sum_partials_kernel(const double* partials, int64_t n, double* out) {
  double acc = 0;
  for (int64_t i = thread_x(); i < n; i += kThreads) acc += partials[i];
  const double total = block_sum(acc);
  if (thread_x() == 0) out[0] = total;
}

inline constexpr size_t kReduceSharedBytes = kThreads * sizeof(double);

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::multi_tensor
