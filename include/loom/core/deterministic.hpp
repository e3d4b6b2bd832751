// Deterministic algorithms. When on, kernels that would accumulate with
// atomics, in an order that can change from run to run, use an order-fixed
// algorithm instead: on CUDA, index_add (the embedding backward) sorts its
// indices and sums each row's contributions in position order. Off by
// default, as in PyTorch: the atomic kernels are faster. The CPU backend is
// deterministic either way; so is every other CUDA kernel of loom except
// scatter-add with repeated indices (cuda/README.md lists them).
// In a recipe: "train": {"deterministic": true}.
#pragma once

namespace loom {

void set_deterministic_algorithms(bool on);
bool deterministic_algorithms();

}  // namespace loom
