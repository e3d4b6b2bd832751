// Whether a strided copy is a transpose, for the backends' copy kernels that
// move one in blocks (src/cpu/copy.cpp) or tiles (cuda/copy_args.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "loom/core/shape.hpp"

namespace loom::kernels {

// a: the dim along which the destination has unit stride; b: the source's.
struct TransposeDims {
  size_t a, b;
};

// The two dims of a copy of `shape` from `src` strides to `dst` strides, when
// they differ and both are at least min_size long. None otherwise, and none
// when the destination repeats an element (a stride-0 dim: the parts a
// backend splits would not be disjoint).
inline std::optional<TransposeDims> transpose_dims(const Shape& shape, const Strides& dst, const Strides& src,
                                                   int64_t min_size) {
  std::optional<size_t> a, b;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (dst[d] == 0) return std::nullopt;
    if (dst[d] == 1) a = d;
    if (src[d] == 1) b = d;
  }
  if (!a || !b || *a == *b || shape[*a] < min_size || shape[*b] < min_size) return std::nullopt;
  return TransposeDims{*a, *b};
}

}  // namespace loom::kernels
