// The f32 GEMM's product of one row: c[0:n] (+)= a[0, 0:k] B, the shape of a
// decoding step (one query's scores against a KV cache, its probabilities
// times the values, a linear layer on one token). The register tile would
// compute kTileRows rows for it, all but one from zero padding, so a row
// takes its own loops:
//  - B row-major (unit column stride): up to kChunk vectors of C stay in
//    registers while the loop walks k, adding a[d] times B's row d; B is read
//    once, row segment by row segment;
//  - B column-major (unit row stride): each c[j] is the dot product of a and
//    B's column j, both read as contiguous vectors (a strided a is copied
//    once into a contiguous buffer first);
//  - other strides: a scalar loop.
// Floor: 2·k·n FLOPs, 4·k·n bytes of B (each value used once): memory bound.
#include "cpu/gemm_f32.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

#include <algorithm>
#include <vector>

namespace loom::cpu::gemm_f32 {

namespace {

constexpr int kChunk = 4;  // vectors of C per pass over k

// c[0:cols] (+)= sum_d a(d) * b[d * b_step + 0:cols], where cols fills
// Vectors vectors, the last through `last` when Masked.
template <int Vectors, bool Masked>
void row_times_rows(const MatrixView& a, const float* b, int64_t b_step, simd::Mask last, float* c, bool accumulate) {
  using simd::Vec;
  Vec acc[Vectors];
  for (int v = 0; v < Vectors; ++v) acc[v] = simd::zero();
  for (int64_t d = 0; d < a.cols; ++d) {
    const Vec av = simd::broadcast(*a.at(0, d));
    const float* row = b + d * b_step;
    for (int v = 0; v < Vectors; ++v) {
      const Vec bv = Masked && v == Vectors - 1 ? simd::load(row + v * kLanes, last) : simd::load(row + v * kLanes);
      acc[v] = simd::fmadd(av, bv, acc[v]);
    }
  }
  for (int v = 0; v < Vectors; ++v) {
    if (Masked && v == Vectors - 1)
      simd::put(c + v * kLanes, last, acc[v], accumulate);
    else
      simd::put(c + v * kLanes, acc[v], accumulate);
  }
}

using RowKernel = void (*)(const MatrixView&, const float*, int64_t, simd::Mask, float*, bool);

RowKernel row_kernel(int vectors, bool masked) {
  static constexpr RowKernel kernels[kChunk][2] = {
      {row_times_rows<1, false>, row_times_rows<1, true>},
      {row_times_rows<2, false>, row_times_rows<2, true>},
      {row_times_rows<3, false>, row_times_rows<3, true>},
      {row_times_rows<4, false>, row_times_rows<4, true>},
  };
  return kernels[vectors - 1][masked];
}

// sum_d a[d] * b[d] over k contiguous values.
float dot(const float* a, const float* b, int64_t k) {
  using simd::Vec;
  Vec acc[2] = {simd::zero(), simd::zero()};
  int64_t d = 0;
  for (; d + 2 * kLanes <= k; d += 2 * kLanes) {
    acc[0] = simd::fmadd(simd::load(a + d), simd::load(b + d), acc[0]);
    acc[1] = simd::fmadd(simd::load(a + d + kLanes), simd::load(b + d + kLanes), acc[1]);
  }
  for (; d < k; d += kLanes) {
    const simd::Mask mask = simd::first_lanes(k - d);
    acc[0] = simd::fmadd(simd::load(a + d, mask), simd::load(b + d, mask), acc[0]);
  }
  alignas(64) float lanes[kLanes];
  simd::store(lanes, simd::add(acc[0], acc[1]));
  float sum = 0;
  for (const float x : lanes) sum += x;
  return sum;
}

std::vector<float>& contiguous_row_buffer() {
  thread_local std::vector<float> buffer;
  return buffer;
}

}  // namespace

void multiply_row(const MatrixView& a, const MatrixView& b, float* c, bool accumulate) {
  const int64_t k = a.cols, n = b.cols;
  if (b.col_stride == 1) {
    for (int64_t j = 0; j < n; j += kChunk * kLanes) {
      const int64_t cols = std::min<int64_t>(kChunk * kLanes, n - j);
      const int vectors = static_cast<int>((cols + kLanes - 1) / kLanes);
      row_kernel(vectors, cols % kLanes != 0)(a, b.at(0, j), b.row_stride, simd::tail_lanes(cols), c + j, accumulate);
    }
    return;
  }
  if (b.row_stride == 1) {
    const float* row = a.data;
    if (a.col_stride != 1) {
      std::vector<float>& buffer = contiguous_row_buffer();
      buffer.resize(static_cast<size_t>(k));
      for (int64_t d = 0; d < k; ++d) buffer[d] = *a.at(0, d);
      row = buffer.data();
    }
    for (int64_t j = 0; j < n; ++j) {
      const float sum = dot(row, b.at(0, j), k);
      c[j] = accumulate ? c[j] + sum : sum;
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    float sum = 0;
    for (int64_t d = 0; d < k; ++d) sum += *a.at(0, d) * *b.at(d, j);
    c[j] = accumulate ? c[j] + sum : sum;
  }
}

}  // namespace loom::cpu::gemm_f32

#endif  // LOOM_GEMM_F32_PACKED
