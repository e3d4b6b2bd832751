// Matrix products.
#pragma once

#include "loom/core/tensor.hpp"

namespace loom {

// NumPy matmul: 1-D operands are promoted and the added dim removed; batch
// dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// [B, M, K] x [B, K, N] -> [B, M, N], no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);
// x [..., in] . weight[out, in]^T + bias[out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace loom
