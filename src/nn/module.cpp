#include "loom/nn/module.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "loom/autograd/grad_mode.hpp"
#include "loom/core/cuda.hpp"

namespace loom::nn {

void Module::check_new_name(const std::string& name) const {
  LOOM_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: invalid name '", name,
             "' (non-empty, no dots)");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  LOOM_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "Module: name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name);
  check_defined(value, "register_parameter", name.c_str());
  value = value.detach().contiguous();
  if (requires_grad) value.requires_grad_(true);
  value.impl()->is_parameter = true;  // autocast caches its cast, frozen or not
  params_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  check_defined(value, "register_buffer", name.c_str());
  buffers_.emplace_back(name, value.detach());
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  LOOM_CHECK(module != nullptr, "register_module: '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", true, params, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, true, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", recurse, false, out);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  NamedTensors tensors = state_dict();
  for (auto& [name, t] : tensors) {
    if (t.device() == device) continue;  // already there, or a tied tensor moved under another name
    try {
      t.set_data(to_device(t.detach(), device));
      if (t.grad().defined()) t.set_grad(to_device(t.grad(), device));
    } catch (const Error& e) {
      LOOM_FAIL("Module::to(", device.str(), "): cannot move '", name, "': ", e.what());
    }
  }
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  NamedTensors buffers = named_buffers();
  out.insert(out.end(), buffers.begin(), buffers.end());
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, Tensor> given;
  for (const auto& [name, t] : state) given[name] = t;
  std::vector<std::string> missing, mis_shaped;
  std::set<std::string> used;
  const NamedTensors own = state_dict();
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    used.insert(name);
    if (it->second.shape() != t.shape() || it->second.dtype() != t.dtype())
      mis_shaped.push_back(name + " (checkpoint " + shape_str(it->second.shape()) + " " + dtype_name(it->second.dtype()) +
                           ", model " + shape_str(t.shape()) + " " + dtype_name(t.dtype()) + ")");
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : given)
    if (!used.count(name)) unexpected.push_back(name);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::string problems;
  if (!mis_shaped.empty()) problems += " mis-shaped: " + join(mis_shaped) + ";";
  if (strict && !missing.empty()) problems += " missing: " + join(missing) + ";";
  if (strict && !unexpected.empty()) problems += " unexpected: " + join(unexpected) + ";";
  LOOM_CHECK(problems.empty(), "load_state_dict:", problems);
  NoGradGuard guard;
  for (auto [name, t] : own) {
    auto it = given.find(name);
    if (it != given.end()) t.copy_(it->second);
  }
}

void Module::summarise(const std::string& name, int depth, std::string& out) const {
  int64_t own = 0;
  for (const auto& [n, t] : params_) own += t.numel();
  std::ostringstream line;
  line << std::string(static_cast<size_t>(depth) * 2, ' ') << (name.empty() ? "" : name + ": ") << type_name() << "  ("
       << num_parameters() << " params)\n";
  out += line.str();
  for (const auto& [n, child] : children_) child->summarise(n, depth + 1, out);
}

std::string Module::summary() const {
  std::string out;
  summarise("", 0, out);
  return out;
}

}  // namespace loom::nn
