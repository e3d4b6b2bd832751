// A leaf tensor that requires grad, of standard-normal values drawn in f64
// and then rounded to `dtype` (so every dtype sees the same draws).
#pragma once

#include <loom/loom.hpp>

namespace loom::testing {

inline Tensor random_leaf(const Shape& shape, DType dtype, Generator& gen) {
  Tensor t = randn(shape, DType::f64, &gen).to(dtype);
  t.requires_grad_();
  return t;
}

}  // namespace loom::testing
