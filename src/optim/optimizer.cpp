#include "loom/optim/optimizer.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "kernels/backend.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/autocast.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/reduction.hpp"

namespace loom::optim {

std::vector<ParamGroup> decay_groups(const nn::Module& module, double weight_decay) {
  ParamGroup decay{"decay", {}, {}, 1.0, weight_decay};
  ParamGroup no_decay{"no_decay", {}, {}, 1.0, 0.0};
  for (const auto& [name, p] : module.named_parameters()) {
    if (!p.requires_grad()) continue;
    ParamGroup& g = p.dim() >= 2 ? decay : no_decay;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

std::vector<ParamGroup> single_group(const nn::Module& module, double weight_decay) {
  ParamGroup g{"all", {}, {}, 1.0, weight_decay};
  for (const auto& [name, p] : module.named_parameters()) {
    if (!p.requires_grad()) continue;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  return {g};
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::set<TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    LOOM_CHECK(g.names.empty() || g.names.size() == g.params.size(), "optimizer: group '", g.name, "' has ",
               g.names.size(), " names for ", g.params.size(), " parameters");
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      check_defined(p, "optimizer", "param");
      LOOM_CHECK(p.is_leaf() && p.requires_grad() && p.is_contiguous(), "optimizer: parameter '", param_name(gi, i),
                 "' must be a contiguous leaf that requires grad");
      LOOM_CHECK(seen.insert(p.impl()).second, "optimizer: parameter '", param_name(gi, i),
                 "' appears more than once");
    }
    state_.emplace_back(g.params.size());
  }
}

std::string Optimizer::param_name(size_t group, size_t index) const {
  if (group < groups_.size() && index < groups_[group].names.size()) return groups_[group].names[index];
  return "group" + std::to_string(group) + ".param" + std::to_string(index);
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

bool Optimizer::has_slot(const std::string& name, size_t group, size_t index) const {
  return state_[group][index].count(name) > 0;
}

Tensor& Optimizer::slot(const std::string& name, size_t group, size_t index) {
  Tensor& t = state_[group][index][name];
  if (!t.defined()) t = zeros_like(groups_[group].params[index]);
  return t;
}

nn::NamedTensors Optimizer::collect_slots(const std::vector<std::string>& slots) const {
  nn::NamedTensors out;
  for (size_t g = 0; g < state_.size(); ++g)
    for (size_t i = 0; i < state_[g].size(); ++i)
      for (const auto& s : slots) {
        auto it = state_[g][i].find(s);
        if (it != state_[g][i].end()) out.emplace_back(param_name(g, i) + "." + s, it->second);
      }
  return out;
}

nlohmann::json Optimizer::state_scalars() const { return {{"steps", steps_}}; }

int64_t Optimizer::steps_of(const nlohmann::json& scalars, const char* who) {
  LOOM_CHECK(scalars.is_object() && scalars.contains("steps") && scalars["steps"].is_number_integer(), who,
             " load_state: scalars must hold an integer 'steps', got ", scalars.dump());
  return scalars["steps"].get<int64_t>();
}

std::vector<Tensor> Optimizer::all_params() const {
  std::vector<Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

double Optimizer::grad_norm() { return optim::grad_norm(all_params()); }

double Optimizer::clip_grad_norm(double max_norm) { return optim::clip_grad_norm(all_params(), max_norm); }

void Optimizer::load_state(const nn::NamedTensors& tensors, const nlohmann::json& scalars) {
  const int64_t steps = steps_of(scalars, "optimizer");
  std::map<std::string, std::pair<size_t, size_t>> where;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) where[param_name(g, i)] = {g, i};
  for (const auto& [key, t] : tensors) {
    const auto dot = key.rfind('.');
    LOOM_CHECK(dot != std::string::npos, "optimizer load_state: malformed key '", key, "'");
    auto it = where.find(key.substr(0, dot));
    LOOM_CHECK(it != where.end(), "optimizer load_state: state for unknown parameter '", key.substr(0, dot), "'");
    const Tensor& p = groups_[it->second.first].params[it->second.second];
    LOOM_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), "optimizer load_state: '", key, "' has ",
               shape_str(t.shape()), " ", dtype_name(t.dtype()), ", parameter has ", shape_str(p.shape()), " ",
               dtype_name(p.dtype()));
    // A copy on the parameter's device (checkpoints load on the CPU).
    state_[it->second.first][it->second.second][key.substr(dot + 1)] = t.contiguous().clone().to(p.device());
  }
  steps_ = steps;
}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : Optimizer(std::move(groups)), options_(options) {
  LOOM_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
             "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::step(double lr) {
  NoGradGuard guard;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor p = g.params[i];
      if (!p.grad().defined()) continue;
      Tensor d = g.weight_decay != 0 ? add(p.grad(), mul(p, g.weight_decay)) : p.grad();
      if (options_.momentum != 0) {
        const bool fresh = !has_slot("momentum_buffer", gi, i);
        Tensor& buf = slot("momentum_buffer", gi, i);
        if (fresh) buf.copy_(d);
        else buf.mul_(options_.momentum).add_(d, 1.0 - options_.dampening);
        d = options_.nesterov ? add(d, mul(buf, options_.momentum)) : buf;
      }
      p.add_(d, -lr * g.lr_scale);
    }
  }
  ++steps_;
}

nn::NamedTensors SGD::state_tensors() const { return collect_slots({"momentum_buffer"}); }

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options) : Optimizer(std::move(groups)), options_(options) {}

void AdamW::step(double lr) {
  NoGradGuard guard;
  ++steps_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const kernels::AdamWStep s{lr * g.lr_scale, options_.beta1, options_.beta2, options_.eps, g.weight_decay,
                               1.0 - std::pow(options_.beta1, static_cast<double>(steps_)),
                               1.0 - std::pow(options_.beta2, static_cast<double>(steps_))};
    std::vector<Tensor> params, grads, exp_avgs, exp_avg_sqs, half_copies;
    std::vector<uint64_t> versions;
    for (size_t i = 0; i < g.params.size(); ++i) {
      if (!g.params[i].grad().defined()) continue;
      params.push_back(g.params[i]);
      grads.push_back(g.params[i].grad().contiguous());
      exp_avgs.push_back(slot("exp_avg", gi, i));
      exp_avg_sqs.push_back(slot("exp_avg_sq", gi, i));
      // Autocast's current bf16 cast of the parameter, rewritten by the update
      // itself: the next forward then casts nothing (loom/ops/autocast.hpp).
      half_copies.push_back(current_cast_copy(g.params[i], DType::bf16));
      versions.push_back(g.params[i].version());
    }
    if (params.empty()) continue;
    // A backend with a multi-tensor kernel updates the group in a few
    // launches; otherwise (or when it declines) one fused update per tensor.
    const kernels::Backend& table = kernels::backend(params.front().device());
    const bool batched =
        table.adamw_multi != nullptr && table.adamw_multi(params, grads, exp_avgs, exp_avg_sqs, half_copies, s);
    for (size_t i = 0; i < params.size(); ++i) {
      if (!batched)
        kernels::backend(params[i].device()).adamw(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], half_copies[i], s);
      params[i].storage()->bump_version();
      if (half_copies[i].defined()) {
        // Rewritten in place: a graph that saved the old copy refuses to run
        // its backward now, as one that saved an f32 parameter does.
        half_copies[i].storage()->bump_version();
        cast_copy_refreshed(params[i], half_copies[i], versions[i]);
      }
    }
  }
}

nn::NamedTensors AdamW::state_tensors() const { return collect_slots({"exp_avg", "exp_avg_sq"}); }

double grad_norm(const std::vector<Tensor>& params) {
  NoGradGuard guard;
  std::vector<Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const kernels::Backend& table = kernels::backend(grads.front().device());
  double total = 0;
  if (table.sum_squares != nullptr && table.sum_squares(grads, &total)) return std::sqrt(total);
  // Per tensor in double, summed where the gradients live: one read back to
  // the host, not one per tensor (each would stall a device).
  Tensor sum_of_squares;
  for (const Tensor& grad : grads) {
    Tensor g = grad.to(DType::f64);
    Tensor s = sum(mul(g, g));
    if (sum_of_squares.defined() && s.device() != sum_of_squares.device()) s = s.to(sum_of_squares.device());
    sum_of_squares = sum_of_squares.defined() ? add(sum_of_squares, s) : s;
  }
  return std::sqrt(sum_of_squares.item<double>());
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  NoGradGuard guard;
  const double scale = max_norm / (norm + 1e-6);
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().mul_(scale);
  return norm;
}

}  // namespace loom::optim
