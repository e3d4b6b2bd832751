// Matrix products.
#pragma once

#include "loom/core/tensor.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom {

// NumPy matmul: 1-D operands are promoted and the added dim removed; batch
// dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// [B, M, K] x [B, K, N] -> [B, M, N], no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);
// x [..., in] . weight[out, in]^T + bias[out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// gelu(linear(x, weight, bias), approx). With a bias and the tanh form the
// backend may apply both in the product's epilogue (cuBLASLt on CUDA), with
// one rounding of a half output.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, GeluApprox approx = GeluApprox::tanh);

}  // namespace loom
