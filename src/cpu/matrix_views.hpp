// A matrix [rows, cols] (any strides) as an operand of the batched GEMM
// entry, which takes [B, rows, cols]: one batch, as it is or transposed.
// No copy either way: the GEMM reads any strides.
#pragma once

#include "loom/core/tensor.hpp"

namespace loom::cpu {

inline Tensor as_batch(const Tensor& m) {
  return make_view(m, {1, m.size(0), m.size(1)}, {0, m.stride(0), m.stride(1)}, m.offset());
}

inline Tensor transposed_as_batch(const Tensor& m) {
  return make_view(m, {1, m.size(1), m.size(0)}, {0, m.stride(1), m.stride(0)}, m.offset());
}

}  // namespace loom::cpu
