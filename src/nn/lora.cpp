// LoRA adapters on host layers, and the functions that apply, switch, merge,
// save and load them (see loom/nn/lora.hpp).
#include "loom/nn/lora.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "loom/autograd/grad_mode.hpp"
#include "loom/io/atomic_file.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/nn/init.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"

namespace loom::nn {

using Json = nlohmann::json;

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter.safetensors";
constexpr const char* kFormat = "loom-lora";

std::string quoted_list(const std::vector<std::string>& names, size_t limit = 8) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return "[" + s + "]";
}

std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// '*' matches any run of characters (dots included); everything else literally.
bool glob_match(const std::string& pattern, const std::string& name) {
  size_t p = 0, n = 0, star = std::string::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}


bool any_matches(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (name_matches(p, name)) return true;
  return false;
}

struct HostRef {
  std::string name;  // dotted, "" for the root
  LoraHost* host;
};

void collect_hosts(Module& m, const std::string& name, std::vector<HostRef>& out) {
  if (auto* host = dynamic_cast<LoraHost*>(&m)) out.push_back({name, host});
  for (const auto& [child_name, child] : m.named_children())
    if (!dynamic_cast<LoraAdapters*>(child.get())) collect_hosts(*child, join_name(name, child_name), out);
}

std::vector<HostRef> hosts_of(Module& root) {
  std::vector<HostRef> out;
  collect_hosts(root, "", out);
  return out;
}

// For read-only callers: they only read through the pointers they get.
std::vector<HostRef> hosts_of(const Module& root) { return hosts_of(const_cast<Module&>(root)); }

std::vector<std::string> names_of(const std::vector<HostRef>& hosts) {
  std::vector<std::string> out;
  for (const auto& h : hosts) out.push_back(h.name.empty() ? "<root>" : h.name);
  return out;
}

// Calls fn(layer, adapter name, adapter) for every adapter under `root`.
void for_each_adapter(const Module& root,
                      const std::function<void(const HostRef&, const std::string&, LoraAdapter&)>& fn) {
  for (const auto& h : hosts_of(root))
    if (const LoraAdapters* adapters = h.host->lora_adapters())
      for (const auto& n : adapters->names()) fn(h, n, *adapters->find(n));
}

struct Hosted {
  HostRef layer;
  LoraAdapter* adapter;
};

// The layers that have adapter `name`; throws naming `op` when none has.
std::vector<Hosted> layers_with(const Module& root, const std::string& name, const char* op) {
  std::vector<Hosted> out;
  for_each_adapter(root, [&](const HostRef& h, const std::string& n, LoraAdapter& a) {
    if (n == name) out.push_back({h, &a});
  });
  LOOM_CHECK(!out.empty(), op, ": no layer has a LoRA adapter named '", name,
             "' (adapters here: ", quoted_list(lora_adapter_names(root)), ")");
  return out;
}

void check_adapter_name(const std::string& name, const char* op) {
  LOOM_CHECK(!name.empty() && name.find('.') == std::string::npos, op, ": adapter name '", name,
             "' must be non-empty and have no dots (it is a module name)");
}

void check_new_adapter(const Module& root, const std::string& name, const char* op) {
  check_adapter_name(name, op);
  const auto existing = lora_adapter_names(root);
  LOOM_CHECK(std::find(existing.begin(), existing.end(), name) == existing.end(), op,
             ": the model already has a LoRA adapter named '", name, "'; pick another name");
}

void check_options(const LoraOptions& o, const std::string& where) {
  LOOM_CHECK(o.rank >= 1, where, ": LoRA rank must be >= 1, got ", o.rank);
  LOOM_CHECK(std::isfinite(o.alpha) && o.alpha > 0, where, ": LoRA alpha must be positive, got ", o.alpha);
  LOOM_CHECK(o.dropout >= 0 && o.dropout < 1, where, ": LoRA dropout must be in [0, 1), got ", o.dropout);
}

// Adds adapter `name` to every layer of `chosen` from the full A and B in
// `weights` (one pair per layer), then makes it the only active adapter.
std::vector<std::string> attach(Module& root, const std::vector<HostRef>& chosen, const std::string& name,
                                const LoraOptions& options, const std::vector<std::pair<Tensor, Tensor>>& weights) {
  std::vector<std::string> names;
  for (size_t i = 0; i < chosen.size(); ++i) {
    chosen[i].host->add_lora_adapter(name, options, weights[i].first, weights[i].second);
    names.push_back(chosen[i].name);
  }
  set_active_adapter(root, name);
  return names;
}

std::string read_text(const std::string& path, const char* op) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), op, ": cannot open '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <class T>
T field(const Json& j, const char* key, const std::string& file) {
  LOOM_CHECK(j.contains(key), "load_adapter: ", file, ": missing key '", key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const Json::exception& e) {
    LOOM_FAIL("load_adapter: ", file, ": key '", key, "' has the wrong type (", e.what(), ")");
  }
}

void set_merged(Module& root, const std::string& name, bool merge) {
  const char* op = merge ? "merge_lora" : "unmerge_lora";
  const auto layers = layers_with(root, name, op);
  for (const auto& l : layers)
    LOOM_CHECK(l.adapter->merged != merge, op, ": adapter '", name, "' on '", l.layer.name, "' is ",
               merge ? "already merged" : "not merged");
  NoGradGuard no_grad;
  for (const auto& l : layers) {
    Tensor w = l.layer.host->lora_weight();
    w.add_(l.adapter->weight_delta().to(w.dtype()), merge ? 1.0 : -1.0);
    l.adapter->merged = merge;
  }
}

}  // namespace

bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern.find('*') != std::string::npos) return glob_match(pattern, name);
  return name == pattern || (name.size() > pattern.size() && name.ends_with("." + pattern));
}


double LoraOptions::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

LoraAdapter::LoraAdapter(const Tensor& a, const Tensor& b, const LoraOptions& o) : options(o), scale(o.scale()) {
  check_defined(a, "LoraAdapter", "A");
  check_defined(b, "LoraAdapter", "B");
  LOOM_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == o.rank && b.size(1) == o.rank, "LoraAdapter: A must be [",
             o.rank, ", in] and B [out, ", o.rank, "], got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  A = register_parameter("A", a);
  B = register_parameter("B", b);
}

Tensor LoraAdapter::delta(const Tensor& x, const std::function<Tensor(const Tensor&)>& between) {
  const Tensor in = options.dropout > 0 ? dropout(x, options.dropout, is_training()) : x;
  // Scaling the [.., r] intermediate is the cheapest place for it.
  Tensor h = mul(linear(in, A), scale);
  if (between) h = between(h);
  return linear(h, B);
}

Tensor LoraAdapter::weight_delta() const { return mul(matmul(B, A), scale); }

void LoraAdapters::add(const std::string& name, std::shared_ptr<LoraAdapter> adapter) {
  LOOM_CHECK(find(name) == nullptr, "LoraAdapters: adapter '", name, "' already exists");
  register_module(name, adapter);
  adapters_.emplace_back(name, std::move(adapter));
}

LoraAdapter* LoraAdapters::find(const std::string& name) const {
  for (const auto& [n, a] : adapters_)
    if (n == name) return a.get();
  return nullptr;
}

std::vector<std::string> LoraAdapters::names() const {
  std::vector<std::string> out;
  for (const auto& [n, a] : adapters_) out.push_back(n);
  return out;
}

void LoraAdapters::set_active(const std::vector<std::string>& names) {
  active_.clear();
  for (const auto& n : names)
    if (find(n) != nullptr) active_.push_back(n);
}

Tensor LoraAdapters::add_to(const Tensor& y, const Tensor& x, const std::function<Tensor(const Tensor&)>& between) {
  Tensor out = y;
  for (const auto& n : active_) {
    LoraAdapter* a = find(n);
    if (!a->merged) out = loom::add(out, a->delta(x, between));
  }
  return out;
}

LoraAdapter& LoraHost::add_lora_adapter(const std::string& name, const LoraOptions& options, const Tensor& a,
                                        const Tensor& b) {
  check_defined(a, "add_lora_adapter", "A");
  check_defined(b, "add_lora_adapter", "B");
  const int64_t in = lora_in_features(), out = lora_out_features();
  LOOM_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == options.rank && a.size(1) == in && b.size(0) == out &&
                 b.size(1) == options.rank,
             "add_lora_adapter '", name, "': A must be [", options.rank, ", ", in, "] and B [", out, ", ", options.rank,
             "], got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (!lora_) {
    lora_ = std::make_shared<LoraAdapters>();
    register_lora(lora_);
  }
  const DType dtype = lora_weight().dtype();
  auto [a_local, b_local] = lora_shards(a, b);
  // Copies, so that the caller's tensors never alias a parameter.
  auto adapter = std::make_shared<LoraAdapter>(a_local.to(dtype).clone(), b_local.to(dtype).clone(), options);
  // A new module starts in training mode; follow the layer's.
  if (const auto* layer = dynamic_cast<const Module*>(this)) adapter->train(layer->is_training());
  lora_->add(name, adapter);
  return *adapter;
}

std::vector<std::string> apply_lora(Module& root, const std::string& name, const LoraOptions& options, Generator* gen) {
  check_new_adapter(root, name, "apply_lora");
  check_options(options, "apply_lora");
  const auto hosts = hosts_of(root);
  LOOM_CHECK(!hosts.empty(), "apply_lora: the model has no Linear (LoRA-capable) layers");
  std::vector<HostRef> chosen;
  for (const auto& h : hosts)
    if ((options.targets.empty() || any_matches(options.targets, h.name)) && !any_matches(options.exclude, h.name))
      chosen.push_back(h);
  LOOM_CHECK(!chosen.empty(), "apply_lora: no Linear layer matches targets ", quoted_list(options.targets, 100),
             options.exclude.empty() ? "" : " minus exclude ",
             options.exclude.empty() ? "" : quoted_list(options.exclude, 100),
             "; Linear layers here: ", quoted_list(names_of(hosts)),
             " (a pattern without '*' matches whole trailing name segments, '*' globs)");
  std::vector<std::pair<Tensor, Tensor>> weights;
  for (const auto& h : chosen) {
    const int64_t in = h.host->lora_in_features();
    const TensorOptions dtype = TensorOptions(h.host->lora_weight().dtype()).with_device(h.host->lora_weight().device());
    Tensor a = empty({options.rank, in}, dtype);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    init::uniform_(a, -bound, bound, gen);
    weights.emplace_back(a, zeros({h.host->lora_out_features(), options.rank}, dtype));
  }
  return attach(root, chosen, name, options, weights);
}

std::vector<std::string> lora_adapter_names(const Module& root) {
  std::vector<std::string> out;
  for_each_adapter(root, [&](const HostRef&, const std::string& n, LoraAdapter&) {
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  });
  return out;
}

void mark_only_lora_trainable(Module& root) {
  std::set<const TensorImpl*> lora;
  for_each_adapter(root, [&](const HostRef&, const std::string&, LoraAdapter& a) {
    lora.insert(a.A.impl());
    lora.insert(a.B.impl());
  });
  for (auto& [name, p] : root.named_parameters()) {
    const bool trainable = lora.count(p.impl()) > 0;
    p.requires_grad_(trainable);
    // Optimizers step every parameter that has a gradient: drop stale ones.
    if (!trainable) p.zero_grad();
  }
}

void set_active_adapters(Module& root, const std::vector<std::string>& names) {
  const auto known = lora_adapter_names(root);
  for (const auto& n : names)
    LOOM_CHECK(std::find(known.begin(), known.end(), n) != known.end(), "set_active_adapter: no LoRA adapter named '",
               n, "' (adapters here: ", quoted_list(known), ")");
  for (const auto& h : hosts_of(root))
    if (h.host->lora_adapters()) h.host->lora_adapters()->set_active(names);
}

void set_active_adapter(Module& root, const std::string& name) {
  set_active_adapters(root, name.empty() ? std::vector<std::string>{} : std::vector<std::string>{name});
}

void merge_lora(Module& root, const std::string& name) { set_merged(root, name, true); }
void unmerge_lora(Module& root, const std::string& name) { set_merged(root, name, false); }

void save_adapter(const Module& root, const std::string& name, const std::string& dir) {
  const auto layers = layers_with(root, name, "save_adapter");
  io::NamedTensors tensors;
  std::vector<std::string> modules;
  for (const auto& l : layers) {
    LOOM_CHECK(!l.layer.host->lora_sharded(), "save_adapter: '", l.layer.name,
               "' is a tensor-parallel shard; gather the model (dist::full_state_dict) into a TP=1 model and save "
               "the adapter from there");
    tensors.emplace_back(join_name(l.layer.name, "lora_A"), l.adapter->A);
    tensors.emplace_back(join_name(l.layer.name, "lora_B"), l.adapter->B);
    modules.push_back(l.layer.name);
  }
  const LoraOptions& o = layers.front().adapter->options;
  const Json config = {{"format", kFormat},    {"rank", o.rank},       {"alpha", o.alpha},     {"rslora", o.rslora},
                       {"dropout", o.dropout}, {"targets", o.targets}, {"exclude", o.exclude}, {"modules", modules}};
  std::filesystem::create_directories(dir);
  io::save_safetensors(dir + "/" + kWeightsFile, tensors, {{"format", kFormat}});
  io::atomic_write_file(dir + "/" + kConfigFile, config.dump(2) + "\n");
}

void load_adapter(Module& root, const std::string& name, const std::string& dir) {
  check_new_adapter(root, name, "load_adapter");
  const std::string config_path = dir + "/" + kConfigFile, weights_path = dir + "/" + kWeightsFile;
  Json config;
  try {
    config = Json::parse(read_text(config_path, "load_adapter"));
  } catch (const Json::exception& e) {
    LOOM_FAIL("load_adapter: ", config_path, ": not valid JSON (", e.what(), ")");
  }
  LOOM_CHECK(config.is_object(), "load_adapter: ", config_path, ": expected a JSON object");
  const auto format = field<std::string>(config, "format", config_path);
  LOOM_CHECK(format == kFormat, "load_adapter: ", config_path, ": format '", format, "' is not '", kFormat, "'");
  LoraOptions o;
  o.rank = field<int64_t>(config, "rank", config_path);
  o.alpha = field<double>(config, "alpha", config_path);
  o.rslora = field<bool>(config, "rslora", config_path);
  o.dropout = field<double>(config, "dropout", config_path);
  o.targets = field<std::vector<std::string>>(config, "targets", config_path);
  o.exclude = field<std::vector<std::string>>(config, "exclude", config_path);
  const auto modules = field<std::vector<std::string>>(config, "modules", config_path);
  check_options(o, "load_adapter: " + config_path);
  LOOM_CHECK(!modules.empty(), "load_adapter: ", config_path, ": 'modules' is empty");

  const auto hosts = hosts_of(root);
  std::vector<HostRef> chosen;
  for (const auto& m : modules) {
    auto it = std::find_if(hosts.begin(), hosts.end(), [&](const HostRef& h) { return h.name == m; });
    LOOM_CHECK(it != hosts.end(), "load_adapter: ", config_path, ": layer '", m,
               "' is not a Linear layer of this model (Linear layers here: ", quoted_list(names_of(hosts)), ")");
    LOOM_CHECK(std::none_of(chosen.begin(), chosen.end(), [&](const HostRef& h) { return h.name == m; }),
               "load_adapter: ", config_path, ": layer '", m, "' is listed twice");
    chosen.push_back(*it);
  }

  std::map<std::string, Tensor> tensors;
  for (auto& [key, t] : io::load_safetensors(weights_path)) tensors[key] = t;
  std::set<std::string> used;
  auto take = [&](const std::string& key, const Shape& want) {
    auto it = tensors.find(key);
    LOOM_CHECK(it != tensors.end(), "load_adapter: ", weights_path, ": missing '", key, "'");
    LOOM_CHECK(it->second.shape() == want, "load_adapter: ", weights_path, ": '", key, "' has shape ",
               shape_str(it->second.shape()), ", the model needs ", shape_str(want));
    LOOM_CHECK(is_floating(it->second.dtype()), "load_adapter: ", weights_path, ": '", key, "' has dtype ",
               dtype_name(it->second.dtype()), ", not a floating type");
    used.insert(key);
    return it->second;
  };
  std::vector<std::pair<Tensor, Tensor>> weights;
  for (const auto& h : chosen) {
    Tensor a = take(join_name(h.name, "lora_A"), {o.rank, h.host->lora_in_features()});
    Tensor b = take(join_name(h.name, "lora_B"), {h.host->lora_out_features(), o.rank});
    weights.emplace_back(a, b);
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, t] : tensors)
    if (!used.count(key)) unexpected.push_back(key);
  LOOM_CHECK(unexpected.empty(), "load_adapter: ", weights_path, ": unexpected ", quoted_list(unexpected),
             " (not listed in ", kConfigFile, ")");

  attach(root, chosen, name, o, weights);
}

void load_base_state_dict(Module& root, const NamedTensors& state) {
  std::set<std::string> given;
  for (const auto& [name, t] : state) given.insert(name);
  NamedTensors full = state;
  for_each_adapter(root, [&](const HostRef& h, const std::string& n, LoraAdapter& a) {
    const std::string prefix = join_name(h.name, "lora." + n + ".");
    for (const auto& [param, value] : {std::pair{"A", a.A}, std::pair{"B", a.B}})
      if (!given.count(prefix + param)) full.emplace_back(prefix + param, value.detach().clone());
  });
  root.load_state_dict(full, true);
}

}  // namespace loom::nn
