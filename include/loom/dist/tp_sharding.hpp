// How tensor-parallel modules shard their parameters, and checkpoints in the
// unsharded layout.
//
// A ShardSpec says how one parameter of the full (TP=1) module is cut: along
// `dim`, which consists of `parts` equal blocks (3 for a fused QKV weight, 1
// otherwise); rank r of a group of size n holds slice r of every block,
// concatenated. So rank r of a fused QKV holds [q_r; k_r; v_r] (whole heads).
//
// A tensor-parallel module derives from TensorParallelModule and lists its
// sharded parameters; parameters it does not list are replicated. The free
// functions walk a module tree (any mix of TP and ordinary modules):
// full_state_dict gathers every sharded parameter over the group into the
// names and shapes of the TP=1 module, load_full_state_dict slices such a
// dict for this rank. Checkpoints are therefore written unsharded and load
// at any TP size (the full tensors exist once on each rank while saving or
// loading: that is the memory cost of this simplicity).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "loom/dist/process_group.hpp"
#include "loom/nn/module.hpp"

namespace loom::dist {

struct ShardSpec {
  int64_t dim = 0;
  int64_t parts = 1;
};

class TensorParallelModule {
 public:
  virtual ~TensorParallelModule() = default;
  // Local parameter name (as registered on this module) -> its sharding.
  virtual std::vector<std::pair<std::string, ShardSpec>> shard_specs() const = 0;
};

// Rank `rank`'s shard of `full` (a new contiguous tensor). Throws when
// full.size(dim) does not split into parts * size equal pieces.
Tensor shard_of(const Tensor& full, ShardSpec spec, int rank, int size);
// The inverse: the full tensor from every rank's shard, in rank order.
Tensor unshard(const std::vector<Tensor>& shards, ShardSpec spec);

// Dotted parameter name -> spec, for every sharded parameter under `module`.
std::map<std::string, ShardSpec> sharded_parameters(const nn::Module& module);

// The state dict of the TP=1 module (names and shapes), gathered over `tp`
// (collective: every rank of tp must call it; every rank gets the result).
nn::NamedTensors full_state_dict(const nn::Module& module, ProcessGroup& tp);
// Loads a TP=1 state dict, keeping this rank's shards. No communication.
void load_full_state_dict(nn::Module& module, const nn::NamedTensors& full, ProcessGroup& tp, bool strict = true);

// The same for optimizer state named "<param>.<slot>" (optim::Optimizer::
// state_tensors()): a slot of a sharded parameter is shaped like it and is
// gathered / sliced with its spec; other entries pass unchanged.
nn::NamedTensors full_optimizer_state(const nn::Module& module, const nn::NamedTensors& local_state,
                                      ProcessGroup& tp);
nn::NamedTensors local_optimizer_state(const nn::Module& module, const nn::NamedTensors& full_state,
                                       ProcessGroup& tp);

}  // namespace loom::dist
