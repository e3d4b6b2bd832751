// Shard specs, slicing and gathering of parameters, and unsharded state
// dicts for tensor-parallel modules (see loom/dist/tp_sharding.hpp).
#include "loom/dist/tp_sharding.hpp"

#include <functional>

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/shape.hpp"

namespace loom::dist {

namespace {

int64_t norm_dim(const Tensor& t, int64_t dim) { return dim < 0 ? dim + t.dim() : dim; }

void collect_specs(const nn::Module& m, const std::string& prefix, std::map<std::string, ShardSpec>& out) {
  if (const auto* tp = dynamic_cast<const TensorParallelModule*>(&m)) {
    for (const auto& [name, spec] : tp->shard_specs()) out[prefix + name] = spec;
  }
  for (const auto& [name, child] : m.named_children()) collect_specs(*child, prefix + name + ".", out);
}

}  // namespace

Tensor shard_of(const Tensor& full, ShardSpec spec, int rank, int size) {
  NoGradGuard no_grad;
  const int64_t dim = norm_dim(full, spec.dim);
  LOOM_CHECK(dim >= 0 && dim < full.dim() && spec.parts >= 1 && size >= 1 && rank >= 0 && rank < size, "rank ",
             rank, ": shard_of: bad spec (dim ", spec.dim, ", parts ", spec.parts, ") for ", shape_str(full.shape()),
             " on ", size, " ranks");
  LOOM_CHECK(full.size(dim) % (spec.parts * size) == 0, "rank ", rank, ": shard_of: dim ", dim, " of ",
             shape_str(full.shape()), " does not split into ", spec.parts, " part(s) x ", size, " ranks");
  const int64_t block = full.size(dim) / spec.parts, piece = block / size;
  std::vector<Tensor> pieces;
  for (int64_t p = 0; p < spec.parts; ++p) pieces.push_back(full.narrow(dim, p * block + rank * piece, piece));
  return (pieces.size() == 1 ? pieces[0] : cat(pieces, dim)).contiguous().clone();
}

Tensor unshard(const std::vector<Tensor>& shards, ShardSpec spec) {
  NoGradGuard no_grad;
  LOOM_CHECK(!shards.empty(), "unshard: no shards");
  const int64_t dim = norm_dim(shards[0], spec.dim);
  LOOM_CHECK(shards[0].size(dim) % spec.parts == 0, "unshard: dim ", dim, " of shard ",
             shape_str(shards[0].shape()), " does not split into ", spec.parts, " parts");
  const int64_t piece = shards[0].size(dim) / spec.parts;
  std::vector<Tensor> pieces;
  for (int64_t p = 0; p < spec.parts; ++p)
    for (const Tensor& s : shards) pieces.push_back(s.narrow(dim, p * piece, piece));
  return cat(pieces, dim).contiguous();
}

std::map<std::string, ShardSpec> sharded_parameters(const nn::Module& module) {
  std::map<std::string, ShardSpec> out;
  collect_specs(module, "", out);
  return out;
}

namespace {

// The spec of a named tensor: its own name, or for optimizer state
// ("<param>.<slot>") its parameter's.
using SpecOf = std::function<const ShardSpec*(const std::string& name)>;

SpecOf by_name(const std::map<std::string, ShardSpec>& specs) {
  return [&specs](const std::string& name) -> const ShardSpec* {
    auto it = specs.find(name);
    return it == specs.end() ? nullptr : &it->second;
  };
}

SpecOf by_parameter(const std::map<std::string, ShardSpec>& specs) {
  return [&specs](const std::string& name) -> const ShardSpec* {
    const auto dot = name.rfind('.');
    if (dot == std::string::npos) return nullptr;
    auto it = specs.find(name.substr(0, dot));
    return it == specs.end() ? nullptr : &it->second;
  };
}

nn::NamedTensors gather_named(const nn::NamedTensors& local_tensors, const SpecOf& spec_of, ProcessGroup& tp) {
  NoGradGuard no_grad;
  const int n = tp.size();
  nn::NamedTensors out;
  for (const auto& [name, value] : local_tensors) {
    const ShardSpec* spec = spec_of(name);
    if (spec == nullptr || n == 1) {
      out.emplace_back(name, value.contiguous().clone());
      continue;
    }
    Tensor local = value.contiguous();
    Tensor buf = empty({n * local.numel()}, TensorOptions(local.dtype()).with_device(local.device()));
    tp.all_gather(local.reshape({-1}), buf);
    std::vector<Tensor> shards;
    for (int r = 0; r < n; ++r) shards.push_back(buf.narrow(0, r * local.numel(), local.numel()).reshape(local.shape()));
    out.emplace_back(name, unshard(shards, *spec));
  }
  return out;
}

nn::NamedTensors slice_named(const nn::NamedTensors& full, const SpecOf& spec_of, ProcessGroup& tp) {
  nn::NamedTensors local;
  for (const auto& [name, value] : full) {
    const ShardSpec* spec = spec_of(name);
    if (spec == nullptr) {
      local.emplace_back(name, value);
      continue;
    }
    const int64_t dim = norm_dim(value, spec->dim);
    LOOM_CHECK(dim >= 0 && dim < value.dim() && value.size(dim) % (spec->parts * tp.size()) == 0, "rank ",
               tp.rank(), ": tensor parallel: '", name, "' of shape ", shape_str(value.shape()),
               " does not split along dim ", spec->dim, " into ", spec->parts, " part(s) x ", tp.size(), " ranks");
    local.emplace_back(name, shard_of(value, *spec, tp.rank(), tp.size()));
  }
  return local;
}

}  // namespace

nn::NamedTensors full_state_dict(const nn::Module& module, ProcessGroup& tp) {
  const auto specs = sharded_parameters(module);
  return gather_named(module.state_dict(), by_name(specs), tp);
}

void load_full_state_dict(nn::Module& module, const nn::NamedTensors& full, ProcessGroup& tp, bool strict) {
  const auto specs = sharded_parameters(module);
  module.load_state_dict(slice_named(full, by_name(specs), tp), strict);
}

nn::NamedTensors full_optimizer_state(const nn::Module& module, const nn::NamedTensors& local_state,
                                      ProcessGroup& tp) {
  const auto specs = sharded_parameters(module);
  return gather_named(local_state, by_parameter(specs), tp);
}

nn::NamedTensors local_optimizer_state(const nn::Module& module, const nn::NamedTensors& full_state,
                                       ProcessGroup& tp) {
  const auto specs = sharded_parameters(module);
  return slice_named(full_state, by_parameter(specs), tp);
}

}  // namespace loom::dist
