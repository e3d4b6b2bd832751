// Central finite differences in f64 against autograd.
#pragma once

#include <functional>
#include <vector>

#include <loom/loom.hpp>

namespace loom::testing {

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d sum(fn(inputs) * w)/d input for every input marked differentiable
// (inputs must be f64; they may be non-contiguous views), with w random. An
// input of more than 512 elements is probed at a stride chosen to reach
// every row and column (gradcheck.cpp says when it does), which keeps large
// tile-crossing cases affordable under the sanitizers.
void gradcheck(const OpFn& fn, std::vector<Tensor> inputs, const std::vector<bool>& differentiable, Generator& gen);

}  // namespace loom::testing
