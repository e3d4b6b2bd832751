// The backward engine: runs the graph from the roots in reverse creation order.
#pragma once

#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::autograd {

// Backpropagates `grads` (one per root; an undefined grad for a single-element
// root means 1) through the graph. Without retain_graph, saved tensors are freed
// and a second backward through the same nodes raises loom::Error.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph = false);

}  // namespace loom::autograd
