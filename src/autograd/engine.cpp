// Backward in reverse creation order: a node runs once every node that feeds
// it a gradient has run (dependency counting), and among ready nodes the most
// recently created goes first, so gradients of the last layers are ready
// first (which is what data parallel overlap wants).
#include "loom/autograd/engine.hpp"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/core/kernel_profile.hpp"
#include "loom/ops/autocast.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom::autograd {

namespace {

struct LaterFirst {
  bool operator()(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

// Gradients waiting for each node, one per output of the node.
using GradBuffer = std::unordered_map<Node*, std::vector<Tensor>>;

void accumulate(GradBuffer& buffer, const Edge& edge, const Tensor& grad) {
  std::vector<Tensor>& slots = buffer[edge.node.get()];
  if (slots.empty()) slots.resize(edge.node->num_outputs());
  Tensor& slot = slots.at(edge.input_nr);
  slot = slot.defined() ? add(slot, grad) : grad;
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  LOOM_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " roots but ", grads.size(), " gradients");
  NoGradGuard no_grad;
  AutocastGuard no_autocast(DType::bf16, false);  // gradients keep the dtypes the forward chose

  GradBuffer buffer;
  std::vector<std::shared_ptr<Node>> root_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    check_defined(root, "backward", "root");
    LOOM_CHECK(root.requires_grad(), "backward: the tensor of shape ", shape_str(root.shape()),
               " does not require grad and has no grad_fn");
    Tensor g = grads[i];
    if (!g.defined()) {
      LOOM_CHECK(root.numel() == 1, "backward: a gradient must be given for a non-scalar output of shape ",
                 shape_str(root.shape()));
      g = ones_like(root);
    }
    LOOM_CHECK(g.shape() == root.shape(), "backward: gradient of shape ", shape_str(g.shape()),
               " for an output of shape ", shape_str(root.shape()));
    LOOM_CHECK(g.dtype() == root.dtype(), "backward: gradient dtype ", dtype_name(g.dtype()), " for an output of dtype ",
               dtype_name(root.dtype()));
    Edge e = gradient_edge(root);
    accumulate(buffer, e, g);
    root_nodes.push_back(e.node);
  }

  // Count, for every reachable node, how many edges feed it.
  std::unordered_map<Node*, int> dependencies;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (auto& n : root_nodes)
    if (seen.insert(n.get()).second) stack.push_back(n.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next_edges()) {
      if (!e.valid()) continue;
      ++dependencies[e.node.get()];
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }

  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, LaterFirst> ready;
  std::unordered_set<Node*> queued;
  for (auto& n : root_nodes)
    if (dependencies[n.get()] == 0 && queued.insert(n.get()).second) ready.push(n);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    std::vector<Tensor> grads = std::move(buffer[node.get()]);
    buffer.erase(node.get());
    grads.resize(node->num_outputs());

    bool any_grad = false;
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      any_grad = true;
      if (!node->has_output_slots()) continue;
      Node::OutputSlot& slot = node->output_slot(i);
      for (auto& hook : slot.hooks)
        if (auto replaced = hook(grads[i])) grads[i] = *replaced;
      if (auto out = slot.retained.lock()) out->grad = grads[i];
    }
    std::vector<Tensor> input_grads;
    if (any_grad) {
      loom::detail::KernelContextScope scope("backward of ", node->name());
      input_grads = node->apply_outputs(grads);
    }
    if (!retain_graph) node->release_saved();

    static const std::string kGradientSum = "gradient sum";  // of a tensor used more than once
    loom::detail::KernelContextScope scope("", kGradientSum);
    auto& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      if (!edges[i].valid()) continue;
      Node* child = edges[i].node.get();
      if (i < input_grads.size() && input_grads[i].defined()) accumulate(buffer, edges[i], input_grads[i]);
      if (--dependencies[child] == 0) ready.push(edges[i].node);
    }
  }
}

}  // namespace loom::autograd
