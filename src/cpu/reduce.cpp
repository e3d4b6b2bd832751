// Reductions over the middle axis of a contiguous [outer, r, inner] block.
// Sums accumulate in double, so f32 results do not depend on the order.
// The pool shares out (outer row, column block) units; each output element is
// reduced by one thread in a fixed order, so the bits do not depend on the
// thread count. Columns (inner > 1) are summed in order along r, side by
// side; a row sum (inner == 1) over interleaved lanes, then the lanes in
// order: one chain of dependent double adds would wait 4 cycles per element
// (a convolution's bias gradient sums 100k elements per channel).
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_row.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

constexpr int64_t kColumnBlock = 256;         // output columns per unit of work
constexpr int64_t kGrainElements = 1 << 15;  // inputs a thread's share reads at least

template <class T>
void sum_columns(const T* x, int64_t r, int64_t inner, int64_t c0, int64_t c1, T* out) {
  if (inner == 1) {  // a row: lanes of double partial sums (vec_row.hpp)
    out[0] = static_cast<T>(lane_sum<double>(r, [x](int64_t k) { return static_cast<double>(x[k]); }));
    return;
  }
  const int64_t width = c1 - c0;
  double acc[kColumnBlock];
  std::fill_n(acc, width, 0.0);  // only the columns used
  for (int64_t k = 0; k < r; ++k) {
    const T* row = x + k * inner + c0;
    for (int64_t c = 0; c < width; ++c) acc[c] += row[c];
  }
  for (int64_t c = 0; c < width; ++c) out[c0 + c] = static_cast<T>(acc[c]);
}

// max and argmax: first maximal index wins; NaN counts as the maximum.
template <class T>
void max_columns(Reduce op, const T* x, int64_t r, int64_t inner, int64_t c0, int64_t c1, void* out) {
  for (int64_t c = c0; c < c1; ++c) {
    const T* p = x + c;
    T best = p[0];
    int64_t best_k = 0;
    for (int64_t k = 1; k < r && best == best; ++k) {
      const T v = p[k * inner];
      if (v > best || v != v) {
        best = v;
        best_k = k;
      }
    }
    if (op == Reduce::max) static_cast<T*>(out)[c] = best;
    else static_cast<int64_t*>(out)[c] = best_k;
  }
}

}  // namespace

void reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out) {
  dispatch_float(x.dtype(), "reduce", [&]<class T>() {
    const T* xp = ptr<T>(x);
    const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock, units = outer * blocks;
    const int64_t unit_elements = std::max<int64_t>(1, r * std::min(inner, kColumnBlock));
    const int64_t out_size = op == Reduce::argmax ? static_cast<int64_t>(sizeof(int64_t)) : static_cast<int64_t>(sizeof(T));
    char* op_base = static_cast<char*>(out.raw_data());
    parallel_for(0, units, std::max<int64_t>(1, kGrainElements / unit_elements), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t a = u / blocks, c0 = u % blocks * kColumnBlock, c1 = std::min(inner, c0 + kColumnBlock);
        const T* base = xp + a * r * inner;
        if (op == Reduce::sum) sum_columns(base, r, inner, c0, c1, ptr<T>(out) + a * inner);
        else max_columns(op, base, r, inner, c0, c1, op_base + a * inner * out_size);
      }
    });
  });
}

}  // namespace loom::cpu
