#include "loom/autograd/node.hpp"

#include <atomic>
#include <span>

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};
}

Node::Node(std::string name) : name_(std::move(name)), sequence_nr_(g_next_sequence_nr++) {}

Node::OutputSlot& Node::output_slot(size_t i) {
  LOOM_CHECK(i < num_outputs(), name_, ": output ", i, " of a node with ", num_outputs(), " outputs");
  if (output_slots_.size() < num_outputs()) output_slots_.resize(num_outputs());
  return output_slots_[i];
}

SavedTensor::SavedTensor(const Tensor& t) : saved_defined_(t.defined()) {
  if (!t.defined()) return;
  tensor_ = t.detach();  // no grad_fn: a saved output must not own its own node
  version_ = t.version();
}

Tensor SavedTensor::unpack(const Node& owner, size_t index) const {
  if (!saved_defined_) return Tensor();
  LOOM_CHECK(tensor_.defined(), owner.name(), ": saved tensor ", index,
             " was already freed; to backward through the graph a second time, pass retain_graph=true to the first "
             "backward()");
  LOOM_CHECK(tensor_.version() == version_, owner.name(), ": tensor ", index, " of shape ", shape_str(tensor_.shape()),
             " saved for backward was modified by an in-place operation (version ", tensor_.version(),
             ", expected ", version_, ")");
  return tensor_;
}

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& incoming) {
  Tensor grad = incoming;
  for (auto& hook : leaf_->hooks) {
    if (auto replaced = hook(grad)) grad = *replaced;
  }
  if (!leaf_->grad.defined()) {
    // Keep .grad exclusive: an incoming gradient may alias another tensor's
    // (add's backward hands the same tensor to both inputs).
    leaf_->grad = grad.storage().use_count() == 1 && grad.is_contiguous() ? grad.detach() : grad.clone();
  } else {
    leaf_->grad = add(leaf_->grad, grad);
  }
  Tensor leaf(leaf_);
  for (auto& hook : leaf_->ready_hooks) hook(leaf);
  return {};
}

FunctionNode::FunctionNode(std::string name, Backward fn, size_t num_outputs, std::vector<SavedTensor> saved,
                           std::vector<bool> needs_grad, std::vector<Shape> input_shapes)
    : Node(std::move(name)),
      fn_(std::move(fn)),
      num_outputs_(num_outputs),
      saved_(std::move(saved)),
      needs_grad_(std::move(needs_grad)),
      input_shapes_(std::move(input_shapes)) {}

std::vector<Tensor> FunctionNode::apply_outputs(const std::vector<Tensor>& grad_outputs) {
  // Only nodes that saved tensors need them again; others can re-run, as in PyTorch.
  LOOM_CHECK(!released_ || saved_.empty(), name_,
             ": trying to backward through the graph a second time (its saved tensors were freed); pass "
             "retain_graph=true to the first backward()");
  BackwardContext ctx(*this, saved_, needs_grad_);
  LOOM_CHECK(grad_outputs.size() == num_outputs_, name_, ": ", grad_outputs.size(), " output gradients for ",
             num_outputs_, " outputs");
  std::vector<Tensor> grads = fn_.index() == 0 ? std::get<BackwardFn>(fn_)(ctx, grad_outputs[0])
                                              : std::get<MultiBackwardFn>(fn_)(ctx, grad_outputs);
  LOOM_CHECK(grads.size() == needs_grad_.size(), name_, " backward returned ", grads.size(), " gradients for ",
             needs_grad_.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!needs_grad_[i]) {
      grads[i] = Tensor();
    } else if (grads[i].defined()) {
      LOOM_CHECK(grads[i].shape() == input_shapes_[i], name_, " backward: gradient ", i, " has shape ",
                 shape_str(grads[i].shape()), " but the input has shape ", shape_str(input_shapes_[i]));
    }
  }
  return grads;
}

void FunctionNode::release_saved() {
  for (auto& s : saved_) s.reset();
  released_ = true;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return Edge{};
  if (t.grad_fn()) return Edge{t.grad_fn(), t.impl()->output_nr};
  TensorImpl* impl = t.impl();
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return Edge{acc};
}

namespace {

// Attaches one FunctionNode producing `outputs` (output i of the node is
// outputs[i]) when any input requires grad and grad mode is on.
void attach(const char* op, std::span<Tensor> outputs, const std::vector<Tensor>& inputs,
            const std::vector<Tensor>& saved, FunctionNode::Backward backward) {
  if (!any_requires_grad(inputs)) return;
  std::vector<bool> needs(inputs.size());
  std::vector<Shape> shapes(inputs.size());
  std::vector<Edge> edges(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    needs[i] = inputs[i].defined() && inputs[i].requires_grad();
    if (inputs[i].defined()) shapes[i] = inputs[i].shape();
    edges[i] = gradient_edge(inputs[i]);
  }
  std::vector<SavedTensor> kept;
  kept.reserve(saved.size());
  for (const auto& t : saved) kept.emplace_back(t);
  auto node = std::make_shared<FunctionNode>(op, std::move(backward), outputs.size(), std::move(kept),
                                             std::move(needs), std::move(shapes));
  node->next_edges() = std::move(edges);
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* impl = outputs[i].impl();
    impl->grad_fn = node;
    impl->output_nr = static_cast<uint32_t>(i);
    impl->requires_grad = true;
  }
}

}  // namespace

std::vector<Tensor> record(const char* op, std::vector<Tensor> outputs, const std::vector<Tensor>& inputs,
                           const std::vector<Tensor>& saved, MultiBackwardFn backward) {
  attach(op, outputs, inputs, saved, std::move(backward));
  return outputs;
}

Tensor record(const char* op, Tensor output, const std::vector<Tensor>& inputs, const std::vector<Tensor>& saved,
              BackwardFn backward) {
  attach(op, std::span<Tensor>(&output, 1), inputs, saved, std::move(backward));
  return output;
}

}  // namespace loom::autograd
