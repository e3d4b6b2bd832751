// LoRA (Hu et al. 2021): low-rank adapters on linear layers for fine-tuning
// with few trainable parameters.
//
// A layer y = x W^T + b that derives from LoraHost (nn::Linear,
// dist::ColumnParallelLinear, dist::RowParallelLinear) hosts named adapters.
// Adapter k holds A_k [r, in] and B_k [out, r], and the forward pass becomes
//   y = x W^T + b + sum over active, unmerged k of  scale_k * B_k(A_k(dropout(x)))
// with scale = alpha / r (alpha / sqrt(r) with rslora). A is drawn
// U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's kaiming_uniform with a = sqrt(5), as
// PEFT does) and B is zero, so a fresh adapter leaves the output unchanged.
//
// The adapters live in the module tree: layer child "lora", one child per
// adapter name, parameters "A" and "B". So "blocks.0.attn.qkv.lora.default.A"
// appears in named_parameters() and state_dict() like any parameter, and
// optimizers, checkpoints and train()/eval() see it. A checkpoint written
// before LoRA was applied lacks those keys: load it with load_base_state_dict
// (strict for every other key) or load_state_dict(state, false).
//
// Target patterns (LoraOptions::targets and ::exclude) are matched against
// the dotted module names of the host layers:
//   - a pattern with '*' is a glob over the whole name, '*' matching any run of
//     characters, dots included ("blocks.*.attn.qkv", "*fc1");
//   - a pattern without '*' matches a name equal to it or ending in
//     '.' + pattern, i.e. whole trailing name segments ("qkv" matches
//     "blocks.0.attn.qkv"; "attn.qkv" also does; "kv" does not).
// (nn::name_matches below.) Empty targets select every host layer. A layer matching an exclude pattern
// is skipped even when targeted. apply_lora on a host layer itself (no
// parent) treats its name as "".
//
// Tensor parallelism: a column-parallel layer keeps A replicated [r, in] and
// B split like its weight [out/tp, r]; a row-parallel layer keeps A split by
// columns [r, in/tp] and B replicated [out, r]. Both are built from the full
// A and B (the same draws as the TP=1 layer, as the TP layers' weights are),
// and the layer's shard_specs list them, so dist::full_state_dict gathers
// adapters too. Dropout inside an adapter on a tensor-parallel layer needs
// the default generator in step on the ranks of the group.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/nn/module.hpp"

namespace loom::nn {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;               // scale alpha / sqrt(rank) instead of alpha / rank
  double dropout = 0;                // on the adapter's input, training mode only
  std::vector<std::string> targets;  // see the pattern rules above; empty = every host layer
  std::vector<std::string> exclude;

  double scale() const;
};

// One adapter on one layer: A [r, in] and B [out, r] (this rank's shards
// under tensor parallelism). Dropout masks come from the default generator.
class LoraAdapter : public Module {
 public:
  LoraAdapter(const Tensor& a, const Tensor& b, const LoraOptions& options);
  // scale * B(between(A(dropout(x)))); `between` (may be empty) is the
  // tensor-parallel collective between the two products.
  Tensor delta(const Tensor& x, const std::function<Tensor(const Tensor&)>& between);
  // scale * B A: what merge_lora adds to the weight.
  Tensor weight_delta() const;

  Tensor A, B;
  LoraOptions options;
  double scale;
  bool merged = false;  // baked into the weight, so not added in forward

 private:
  std::string type_name() const override { return "LoraAdapter"; }
};

// The adapters of one layer, by name, and which of them are active.
class LoraAdapters : public Module {
 public:
  void add(const std::string& name, std::shared_ptr<LoraAdapter> adapter);
  LoraAdapter* find(const std::string& name) const;
  std::vector<std::string> names() const;
  // Keeps the names of `names` this layer has, in that order.
  void set_active(const std::vector<std::string>& names);
  const std::vector<std::string>& active() const { return active_; }
  // y + the delta of every active adapter that is not merged.
  Tensor add_to(const Tensor& y, const Tensor& x, const std::function<Tensor(const Tensor&)>& between);

 private:
  std::vector<std::pair<std::string, std::shared_ptr<LoraAdapter>>> adapters_;
  std::vector<std::string> active_;
  std::string type_name() const override { return "LoraAdapters"; }
};

// A linear layer that can host LoRA adapters (a mixin next to nn::Module).
class LoraHost {
 public:
  virtual ~LoraHost() = default;
  // In and out features of the full layer (the TP=1 layer under tensor parallelism).
  virtual int64_t lora_in_features() const = 0;
  virtual int64_t lora_out_features() const = 0;
  // The weight [out, in] held here (this rank's shard); merge_lora adds to it.
  virtual Tensor lora_weight() const = 0;
  // True for shards of a tensor-parallel layer.
  virtual bool lora_sharded() const { return false; }
  // This rank's shards of a full A [r, in] and B [out, r]; themselves unless sharded.
  virtual std::pair<Tensor, Tensor> lora_shards(const Tensor& a, const Tensor& b) const { return {a, b}; }

  // Adds adapter `name` from the full A and B (the layer keeps its shards).
  LoraAdapter& add_lora_adapter(const std::string& name, const LoraOptions& options, const Tensor& a, const Tensor& b);
  // Null until the first adapter is added.
  LoraAdapters* lora_adapters() const { return lora_.get(); }

 protected:
  // The layer's forward: y plus the active adapters' deltas on input x.
  Tensor add_lora(const Tensor& y, const Tensor& x, const std::function<Tensor(const Tensor&)>& between = {}) const {
    return lora_ ? lora_->add_to(y, x, between) : y;
  }

 private:
  // Registers `adapters` as the layer's child "lora" (only the layer itself
  // may call Module::register_module).
  virtual void register_lora(std::shared_ptr<LoraAdapters> adapters) = 0;
  std::shared_ptr<LoraAdapters> lora_;
};

// Adds adapter `name` (a module name: non-empty, no dots) to every host layer
// under `root` that the options' patterns select, and makes it the only
// active adapter. Returns the dotted names of those layers. Throws, naming
// the patterns and some host layer names, when nothing matches, and when a
// selected layer already has an adapter of that name (then nothing changes).
std::vector<std::string> apply_lora(Module& root, const std::string& name, const LoraOptions& options,
                                    Generator* gen = nullptr);

// The pattern rule above, for any dotted name (also used to freeze
// parameters by name).
bool name_matches(const std::string& pattern, const std::string& name);

// Every adapter name under `root`, in first-seen order.
std::vector<std::string> lora_adapter_names(const Module& root);

// requires_grad on every LoRA A and B under `root`, off on every other
// parameter (whose .grad is dropped, so that optimizers skip it).
void mark_only_lora_trainable(Module& root);

// Makes `names` the active adapters of every host layer (each layer adds
// those of them it has); {} or set_active_adapter(root, "") turns LoRA off.
// Throws on a name no layer under `root` has.
void set_active_adapters(Module& root, const std::vector<std::string>& names);
void set_active_adapter(Module& root, const std::string& name);

// W += scale * B A on every layer with adapter `name` (unmerge: W -= ...).
// A merged adapter is part of W, so forward does not add it again, active or
// not. Throws on an unknown name, merging a merged adapter or unmerging one
// that is not.
void merge_lora(Module& root, const std::string& name);
void unmerge_lora(Module& root, const std::string& name);

// Writes DIR/adapter.safetensors (A and B of adapter `name` only, as
// "<layer>.lora_A" and "<layer>.lora_B") and DIR/adapter_config.json (rank,
// alpha, rslora, dropout, targets, exclude and the list of layers), each
// atomically; DIR is created if missing. Not for tensor-parallel layers
// (gather them with dist::full_state_dict into a TP=1 model first).
void save_adapter(const Module& root, const std::string& name, const std::string& dir);

// Adds adapter `name` to exactly the layers listed in DIR/adapter_config.json
// with its options, fills A and B from DIR/adapter.safetensors (sharding them
// on tensor-parallel layers) and makes it the only active adapter. Everything
// is checked before the model changes; errors name the file and the key or
// layer (a missing or extra key, a shape or a layer the model lacks).
void load_adapter(Module& root, const std::string& name, const std::string& dir);

// load_state_dict for a state without (some) LoRA parameters: strict for
// every other key, and the LoRA parameters the state lacks keep their values.
void load_base_state_dict(Module& root, const NamedTensors& state);

}  // namespace loom::nn
