// How loom-train spreads a run over the ranks of the world (internal to the
// trainer), from the recipe's `dist` section:
//
//   dist.tp_size  the world is a DP x TP grid (dist::make_grid): each group of
//                 tp_size consecutive ranks holds one model split by tensor
//                 parallelism (the task builds its tensor-parallel model from
//                 TaskContext::tp); the rest is data parallel over the DP group.
//   dist.zero     data parallel through dist::ZeroAdamW (ZeRO-1: sharded AdamW
//                 state, reduce-scatter + all-gather) instead of DataParallel +
//                 optim::AdamW. Over one DP rank it is plain AdamW. With
//                 tp_size > 1 it shards each rank's TP slices over its DP group.
//
// The trainer's loop calls backward / finish_step / clip_grad_norm each step.
// Checkpoints are always in the unsharded layout of a one-process run (the
// weights and optimizer state of the TP=1 model, state named as optim::AdamW
// names it), so a run resumes at any world size, TP size and with or without
// ZeRO. Collecting them is collective; only rank 0 gets the tensors.
#pragma once

#include <memory>
#include <string>

#include "loom/dist/data_parallel.hpp"
#include "loom/dist/grid.hpp"
#include "loom/dist/zero.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/optim/optimizer.hpp"
#include "loom/train/task.hpp"

namespace loom::train {

class Parallelism {
 public:
  // Reads and checks the dist section; splits the world (collective). On a
  // CUDA device with several ranks the groups carry device tensors
  // (loom/dist/device_group.hpp).
  Parallelism(const Json& recipe, dist::ProcessGroupPtr world, Device device);

  // The task's view: its rank in the DP group (loader sharding), the TP group
  // and the device it runs on.
  TaskContext task_context(const std::string& run_dir, Device device) const;
  // Refuses a model without tensor-parallel layers when tp_size > 1.
  void check_model(const nn::Module& model, const std::string& kind) const;
  // The group ZeroAdamW shards over; null when ZeRO is off (or over one rank).
  dist::ProcessGroupPtr zero_group() const { return zero_ ? grid_.dp : nullptr; }
  // What ZeroAdamW needs to know of tensor parallelism (nothing without it).
  dist::ZeroTensorParallel zero_tensor_parallel(const nn::Module& model) const;

  // After the (resumed) state is loaded: wraps the model in DataParallel over
  // the DP group when it has several ranks and ZeRO is off.
  void start(nn::Module& model);
  // Backward of one micro-batch; only the last one of a step communicates.
  void backward(const Tensor& loss, bool last_micro_batch);
  // Waits for the gradient averages and averages the step's loss sum and
  // units over the DP group (units: summed).
  void finish_step(double& loss_sum, int64_t& units);
  // The global gradient norm, clipped to max_norm when max_norm > 0.
  double clip_grad_norm(optim::Optimizer& optimizer, const nn::Module& model, double max_norm);

  // Collective: fills c.weights and c.optimizer in the unsharded layout (on
  // rank 0; other ranks get partial or empty lists).
  void collect_checkpoint(const nn::Module& model, const optim::Optimizer& optimizer, io::CheckpointContent& c);
  // Loads weights and optimizer state of any layout-compatible run.
  void load_checkpoint(nn::Module& model, optim::Optimizer& optimizer, const io::CheckpointContent& c,
                       const Json& optimizer_scalars);

  bool lead() const { return grid_.world->rank() == 0; }
  // Whether this rank runs evaluation: rank 0 and its tensor-parallel peers.
  bool evaluates() const { return grid_.dp->rank() == 0; }
  // For the start-up line, e.g. "2 ranks: DP 2 (ZeRO-1) x TP 1".
  std::string describe() const;

 private:
  bool tensor_parallel() const { return grid_.tp_size() > 1; }
  Device device_;
  dist::Grid grid_;
  bool zero_ = false;
  std::unique_ptr<dist::DataParallel> dp_;
};

}  // namespace loom::train
