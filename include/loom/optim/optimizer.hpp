// Optimizers over parameter groups, with state dicts for checkpoints.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"
#include "loom/nn/module.hpp"

namespace loom::optim {

struct ParamGroup {
  std::string name;                  // "decay", "no_decay", ...
  std::vector<std::string> names;    // parameter names (for state dicts); may be empty
  std::vector<Tensor> params;
  double lr_scale = 1.0;             // this group's lr = schedule lr * lr_scale
  double weight_decay = 0.0;
};

// Two groups from a module: "decay" (matrices and conv kernels) and
// "no_decay" (biases, norm weights, every parameter with fewer than 2 dims),
// the usual rule for transformers.
std::vector<ParamGroup> decay_groups(const nn::Module& module, double weight_decay);
// One group holding every parameter of the module.
std::vector<ParamGroup> single_group(const nn::Module& module, double weight_decay = 0.0);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;

  // Applies one update with learning rate `lr` (scaled per group). Parameters
  // without a gradient are skipped.
  virtual void step(double lr) = 0;
  // Drops the gradients of the parameters (and whatever the optimizer derived from them).
  virtual void zero_grad();
  const std::vector<ParamGroup>& groups() const { return groups_; }
  int64_t steps() const { return steps_; }

  // The global L2 norm of the gradients the next step() applies; the
  // parameters' .grad here (optim::grad_norm over the groups). A sharded
  // optimizer (dist::ZeroAdamW) measures its own shards instead.
  virtual double grad_norm();
  // Scales those gradients so that their norm is at most max_norm (> 0);
  // returns the norm before clipping (inf/nan when a gradient is not finite).
  virtual double clip_grad_norm(double max_norm);

  // Tensors of the optimizer state by name ("<param name>.<slot>", each shaped
  // like its parameter) and the scalars as JSON; load_state checks names and
  // shapes. A sharded optimizer gathers its state into this layout (then
  // state_tensors() is collective over its group and only the group's rank 0
  // gets the tensors) and load_state keeps this rank's part of it.
  virtual nn::NamedTensors state_tensors() const = 0;
  nlohmann::json state_scalars() const;
  virtual void load_state(const nn::NamedTensors& tensors, const nlohmann::json& scalars);

 protected:
  // The "steps" of state_scalars() (checked).
  static int64_t steps_of(const nlohmann::json& scalars, const char* who);
  // The state slot `slot` of the parameter at (group, index), created zeroed.
  Tensor& slot(const std::string& slot, size_t group, size_t index);
  bool has_slot(const std::string& slot, size_t group, size_t index) const;
  nn::NamedTensors collect_slots(const std::vector<std::string>& slots) const;
  std::string param_name(size_t group, size_t index) const;
  std::vector<Tensor> all_params() const;  // of every group, in order

  std::vector<ParamGroup> groups_;
  int64_t steps_ = 0;

 private:
  std::vector<std::vector<std::map<std::string, Tensor>>> state_;  // [group][index][slot]
};

struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

// p -= lr * (g + wd p), with (Nesterov) momentum as in PyTorch.
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  void step(double lr) override;
  nn::NamedTensors state_tensors() const override;

 private:
  SGDOptions options_;
};

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * wd * p before the Adam step.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
  void step(double lr) override;
  nn::NamedTensors state_tensors() const override;

 private:
  AdamWOptions options_;
};

// Scales all gradients so that their global L2 norm is at most max_norm;
// returns the norm before clipping (inf/nan when a gradient is not finite).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The global L2 norm of the gradients.
double grad_norm(const std::vector<Tensor>& params);

}  // namespace loom::optim
