// Graph nodes of the define-by-run autograd.
//
// Every differentiable op that runs with grad mode on creates one Node holding
// what backward needs (saved tensors, checked against in-place changes) and
// one Edge per input pointing at the node that produced that input (or at the
// input's AccumulateGrad node when it is a leaf).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::autograd {

class Node;

struct Edge {
  std::shared_ptr<Node> node;  // null when the input needs no gradient
  uint32_t input_nr = 0;       // which of node's outputs the gradient is for
  bool valid() const { return node != nullptr; }
};

// A tensor kept for backward. Remembers the storage version at save time so
// that an in-place change made afterwards is caught instead of silently
// producing a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor unpack(const Node& owner, size_t index) const;
  void reset() { tensor_ = Tensor(); }
  bool defined() const { return saved_defined_; }

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
  bool saved_defined_ = false;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(std::string name);
  virtual ~Node() = default;

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return sequence_nr_; }
  std::vector<Edge>& next_edges() { return next_; }

  // How many tensors this node produced (a fused op may produce several, e.g.
  // a residual sum and its normalisation).
  virtual size_t num_outputs() const { return 1; }
  // Computes the gradients of the inputs from the gradient of the output.
  // An undefined entry means "no gradient for that input".
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  // The engine's entry: one gradient per output, undefined for an output that
  // received none (at least one is defined). Single-output nodes need not
  // override it.
  virtual std::vector<Tensor> apply_outputs(const std::vector<Tensor>& grad_outputs) {
    return apply(grad_outputs.at(0));
  }
  // Frees saved tensors once backward has used them (unless retain_graph).
  virtual void release_saved() {}

  // What the (non-leaf) tensor that is output `i` of this node asked for:
  // hooks on its gradient, and whether to keep that gradient in its .grad.
  struct OutputSlot {
    std::vector<Tensor::GradHook> hooks;
    std::weak_ptr<TensorImpl> retained;
  };
  OutputSlot& output_slot(size_t i);
  bool has_output_slots() const { return !output_slots_.empty(); }

 protected:
  std::string name_;
  uint64_t sequence_nr_;
  std::vector<Edge> next_;
  std::vector<OutputSlot> output_slots_;
};

// The sink of a leaf tensor: adds the incoming gradient into leaf.grad and
// fires the leaf's hooks.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf);
  std::vector<Tensor> apply(const Tensor& grad_output) override;

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// Context passed to an op's backward function.
class BackwardContext {
 public:
  BackwardContext(const Node& node, const std::vector<SavedTensor>& saved,
                  const std::vector<bool>& needs_grad)
      : node_(node), saved_(saved), needs_grad_(needs_grad) {}
  Tensor saved(size_t i) const { return saved_.at(i).unpack(node_, i); }
  bool needs_grad(size_t input) const { return needs_grad_.at(input); }

 private:
  const Node& node_;
  const std::vector<SavedTensor>& saved_;
  const std::vector<bool>& needs_grad_;
};

using BackwardFn = std::function<std::vector<Tensor>(const BackwardContext& ctx, const Tensor& grad)>;
// For ops with several outputs: one gradient per output, undefined where that
// output received none.
using MultiBackwardFn =
    std::function<std::vector<Tensor>(const BackwardContext& ctx, const std::vector<Tensor>& grads)>;

// The node every op in loom/ops uses: a backward function plus saved tensors.
// The backward function must capture no Tensor by value: tensors go through
// `saved` so that they are version-checked and freed after use.
class FunctionNode : public Node {
 public:
  // One output (the common case, called as is) or several.
  using Backward = std::variant<BackwardFn, MultiBackwardFn>;
  FunctionNode(std::string name, Backward fn, size_t num_outputs, std::vector<SavedTensor> saved,
               std::vector<bool> needs_grad, std::vector<Shape> input_shapes);
  size_t num_outputs() const override { return num_outputs_; }
  std::vector<Tensor> apply(const Tensor& grad_output) override { return apply_outputs({grad_output}); }
  std::vector<Tensor> apply_outputs(const std::vector<Tensor>& grad_outputs) override;
  void release_saved() override;

 private:
  Backward fn_;
  size_t num_outputs_;
  std::vector<SavedTensor> saved_;
  std::vector<bool> needs_grad_;
  std::vector<Shape> input_shapes_;
  bool released_ = false;
};

// True when grad mode is on and any input requires grad.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a FunctionNode to `output` when any input requires grad (and grad
// mode is on). `saved` are the tensors backward will read. Returns output.
Tensor record(const char* op, Tensor output, const std::vector<Tensor>& inputs,
              const std::vector<Tensor>& saved, BackwardFn backward);
// The same for an op with several outputs, all produced by one node.
std::vector<Tensor> record(const char* op, std::vector<Tensor> outputs, const std::vector<Tensor>& inputs,
                           const std::vector<Tensor>& saved, MultiBackwardFn backward);

// The edge a gradient for `t` should flow into (null edge if t needs none).
Edge gradient_edge(const Tensor& t);

}  // namespace loom::autograd
