// nn::Module: named parameters, buffers and submodules, train/eval mode and
// state dicts, in the shape users of the PyTorch C++ frontend expect.
//
// Names are dotted paths ("blocks.0.attn.qkv.weight"). A module owns its
// parameters as Tensor handles; load_state_dict copies values into them, so
// optimizers holding the same handles keep working.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/random.hpp"
#include "loom/core/tensor.hpp"

namespace loom::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  int64_t num_parameters(bool trainable_only = false) const;

  // Training mode (dropout on) or evaluation mode, recursively.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Drops .grad of every parameter.
  void zero_grad();
  // Moves every parameter and buffer (and any .grad) to `device` in place:
  // handles held elsewhere (optimizers, tied weights) follow. Throws naming the
  // tensor that cannot move (e.g. no CUDA device).
  void to(Device device);

  // Parameters and buffers by dotted name.
  NamedTensors state_dict() const;
  // Copies values by name. Strict: missing, unexpected and mis-shaped keys are
  // all listed in one loom::Error. Non-strict: mis-shaped keys still fail,
  // missing and unexpected ones are ignored.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // A short tree of the module with parameter counts.
  std::string summary() const;

 protected:
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const;
  virtual std::string type_name() const { return "Module"; }
  void summarise(const std::string& name, int depth, std::string& out) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;

};

// A module with one tensor in and one out, so that it can sit in a Sequential.
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace loom::nn
