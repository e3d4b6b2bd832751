// Reductions over dims (empty dims = all dims), with keepdim.
#pragma once

#include <utility>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom {

Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Variance with Bessel's `correction` (1 = unbiased, as PyTorch's default).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);
// Largest value; ties share the gradient equally.
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor amax(const Tensor& x);
// Values and (i64) indices of the largest element along `dim`; the gradient
// goes to the first maximal index.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

// Sums `grad` down to `shape` (the inverse of broadcasting); used by backward rules.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace loom
