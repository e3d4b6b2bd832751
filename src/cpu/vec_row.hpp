// Reductions over one contiguous row in independent lanes, for the row
// kernels (softmax, norms, cross-entropy). A single accumulator is a serial
// dependency chain the compiler may not reorder; kLanes partial results (one
// AVX-512 register of floats) let the loop vectorise. The lanes accumulate in
// the kernel's type T (each sums n / 16 terms) and are combined in double, so
// f64 stays f64 throughout. (A pairwise fold of the lanes in T looks cheaper
// but GCC compiles it through the stack: 30% slower softmax rows of 128.)
#pragma once

#include <cstdint>
#include <limits>
#include <utility>

namespace loom::cpu {

constexpr int64_t kLanes = 16;

template <class T>
double lanes_total(const T (&acc)[kLanes]) {
  double total = 0;
  for (T a : acc) total += a;
  return total;
}

// Sum of f(i) over i in [0, n). f may also store (the lanes run in order of i
// within a block, and every i is visited exactly once).
template <class T, class F>
double lane_sum(int64_t n, F&& f) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += f(i + l);
  double total = 0;
  for (; i < n; ++i) total += f(i);
  return total + lanes_total(acc);
}

// The sums of f(i) and g(i) over i in [0, n) in one pass.
template <class T, class F, class G>
std::pair<double, double> lane_sum2(int64_t n, F&& f, G&& g) {
  T fa[kLanes] = {}, ga[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      fa[l] += f(i + l);
      ga[l] += g(i + l);
    }
  double fs = 0, gs = 0;
  for (; i < n; ++i) {
    fs += f(i);
    gs += g(i);
  }
  return {fs + lanes_total(fa), gs + lanes_total(ga)};
}

// Maximum of x[0, n); -inf for an empty row. NaN is not propagated.
template <class T>
T lane_max(const T* x, int64_t n) {
  T acc[kLanes];
  for (auto& a : acc) a = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  T m = -std::numeric_limits<T>::infinity();
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (T a : acc) m = a > m ? a : m;
  return m;
}

}  // namespace loom::cpu
