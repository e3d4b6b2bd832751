// Strided iteration and dtype dispatch shared by the CPU kernels.
//
// for_each_run walks N operands of one shape, merging dims that are laid out
// back to back so that the common cases (contiguous, or broadcast along a
// leading dim) become long unit-stride runs the compiler can vectorise.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/tensor.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

template <size_t N, class Run>
void for_each_run(const Shape& shape, const std::array<const Strides*, N>& strides, Run&& run) {
  // Dims innermost first, dropping size-1 dims, merging mergeable neighbours.
  std::vector<int64_t> sizes;
  std::vector<std::array<int64_t, N>> steps;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 1) continue;
    if (shape[d] == 0) return;
    std::array<int64_t, N> st;
    for (size_t k = 0; k < N; ++k) st[k] = (*strides[k])[d];
    if (!sizes.empty()) {
      bool mergeable = true;
      for (size_t k = 0; k < N; ++k) mergeable &= st[k] == steps.back()[k] * sizes.back();
      if (mergeable) {
        sizes.back() *= shape[d];
        continue;
      }
    }
    sizes.push_back(shape[d]);
    steps.push_back(st);
  }
  std::array<int64_t, N> offset{};
  if (sizes.empty()) {  // a single element
    std::array<int64_t, N> unit{};
    run(offset, int64_t{1}, unit);
    return;
  }
  // The two dims above the run are walked by a loop nest on locals and only
  // the rest by the odometer: a permuted copy of small patches (a 2x2 patch
  // row is a run of 2) spends its time between runs, not in them.
  while (sizes.size() < 3) {
    sizes.push_back(1);
    steps.push_back({});
  }
  const int64_t n0 = sizes[0], n1 = sizes[1], n2 = sizes[2];
  const std::array<int64_t, N> s0 = steps[0], s1 = steps[1], s2 = steps[2];
  const size_t outer_dims = sizes.size() - 3;
  std::vector<int64_t> counter(outer_dims, 0);
  while (true) {
    std::array<int64_t, N> at2 = offset;
    for (int64_t i2 = 0; i2 < n2; ++i2) {
      std::array<int64_t, N> at1 = at2;
      for (int64_t i1 = 0; i1 < n1; ++i1) {
        run(at1, n0, s0);
        for (size_t k = 0; k < N; ++k) at1[k] += s1[k];
      }
      for (size_t k = 0; k < N; ++k) at2[k] += s2[k];
    }
    size_t d = 0;
    for (; d < outer_dims; ++d) {
      const auto& step = steps[d + 3];
      for (size_t k = 0; k < N; ++k) offset[k] += step[k];
      if (++counter[d] < sizes[d + 3]) break;
      for (size_t k = 0; k < N; ++k) offset[k] -= step[k] * sizes[d + 3];
      counter[d] = 0;
    }
    if (d == outer_dims) return;
  }
}

// for_each_run split across the kernel thread pool along the outermost
// non-trivial dim. Operand 0 must be the output, written once per element
// (no stride-0 dims), so the parts touch disjoint memory and the result does
// not depend on the thread count. Small tensors run serially.
template <size_t N, class Run>
void for_each_run_parallel(const Shape& shape, const std::array<const Strides*, N>& strides, Run&& run) {
  constexpr int64_t kMinPerPart = int64_t{1} << 15;
  const int64_t total = numel(shape);
  const int64_t ndim = static_cast<int64_t>(shape.size());
  int64_t d = 0;
  while (d < ndim && shape[d] == 1) ++d;
  bool disjoint = true;
  for (int64_t i = 0; i < ndim; ++i) disjoint &= shape[i] == 1 || (*strides[0])[i] != 0;
  if (total < 2 * kMinPerPart || d == ndim || !disjoint || num_threads() == 1) {
    for_each_run<N>(shape, strides, run);
    return;
  }
  const int64_t inner = total / shape[d];
  parallel_for(0, shape[d], std::max<int64_t>(1, kMinPerPart / std::max<int64_t>(inner, 1)), [&](int64_t lo, int64_t hi) {
    Shape part = shape;
    part[d] = hi - lo;
    std::array<int64_t, N> base;
    for (size_t k = 0; k < N; ++k) base[k] = lo * (*strides[k])[d];
    for_each_run<N>(part, strides, [&](auto off, int64_t n, auto st) {
      for (size_t k = 0; k < N; ++k) off[k] += base[k];
      run(off, n, st);
    });
  });
}

// Calls f.template operator()<T>() for the C++ type of a floating dtype.
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default: LOOM_FAIL(op, ": expected a f32 or f64 tensor, got ", dtype_name(t));
  }
}

// The same over every dtype.
template <class F>
decltype(auto) dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<bf16>();
    case DType::f16: return f.template operator()<f16>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    case DType::boolean: return f.template operator()<bool>();
  }
  LOOM_FAIL("unknown dtype");
}

// Arithmetic type for a storage type: halves compute in float.
template <class T> struct Compute { using type = T; };
template <> struct Compute<bf16> { using type = float; };
template <> struct Compute<f16> { using type = float; };
template <> struct Compute<bool> { using type = uint8_t; };
template <class T> using compute_t = typename Compute<T>::type;

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace loom::cpu
