// Tensor factories.
#pragma once

#include <vector>

#include "loom/core/random.hpp"
#include "loom/core/tensor.hpp"

namespace loom {

Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor empty_like(const Tensor& t);
// [start, end) with `step`; default dtype f32 (pass i64 for indices).
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor arange(int64_t end, TensorOptions options = {});
// Uniform [0, 1) and standard normal, from the Philox stream of `gen`
// (the default generator when null).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = DType::i64,
               Generator* gen = nullptr);

// Copies host values into a new tensor of `shape` (the element type picks the dtype).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad = false);
Tensor scalar_tensor(double value, TensorOptions options = {});

}  // namespace loom
