// Seeded initialisers. Each fills a tensor in place (outside the graph) from
// the Philox stream of `gen` (the default generator when null).
#pragma once

#include "loom/core/random.hpp"
#include "loom/core/tensor.hpp"

namespace loom::nn::init {

void normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void uniform_(Tensor& t, double low, double high, Generator* gen = nullptr);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// fan_in / fan_out of a weight: [out, in, k...] -> in * prod(k), out * prod(k)
std::pair<int64_t, int64_t> fans(const Tensor& weight);
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// He initialisation for ReLU-like layers: std = gain / sqrt(fan_in), gain = sqrt(2).
void kaiming_normal_(Tensor& t, double gain = 1.4142135623730951, Generator* gen = nullptr);
void kaiming_uniform_(Tensor& t, double gain = 1.4142135623730951, Generator* gen = nullptr);

}  // namespace loom::nn::init
