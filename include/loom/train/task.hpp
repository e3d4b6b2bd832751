// A training task: what the trainer needs from a model + data pairing.
// The trainer owns the loop (accumulation, clipping, schedules, logging,
// checkpoints); a task owns the model, its data and its metrics.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/data/loader.hpp"
#include "loom/nn/module.hpp"
#include "loom/train/recipe.hpp"

namespace loom::dist {
class ProcessGroup;
}

namespace loom::train {

struct LossResult {
  Tensor loss;        // scalar, mean over the micro-batch
  int64_t units = 0;  // samples or tokens in the micro-batch (for throughput)
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  virtual data::DataLoader& loader() = 0;
  virtual LossResult loss(const data::Batch& batch) = 0;
  // {"metrics": {...}, "chance": {...}, "n": {...}}; runs in eval mode, no grad.
  virtual Json evaluate(int64_t max_batches) = 0;
  // "samples" or "tokens": the unit of throughput.
  virtual std::string unit() const = 0;
  // Random streams that must be checkpointed (dropout masks, ...).
  virtual std::vector<Generator*> generators() { return {}; }
  // Files a run needs besides checkpoints (e.g. the tokenizer), written to run_dir.
  virtual void save_artifacts(const std::string& run_dir) { (void)run_dir; }
};

// Where a task runs: the run directory holding artifacts to reuse (may be
// empty), this process's place in data parallelism (rank and world_size of
// the data-parallel group: they shard the loader), and the tensor-parallel
// group when the model is split over several ranks (null or one rank: not
// split). Tasks without a tensor-parallel model ignore it; the trainer then
// refuses dist.tp_size > 1. The trainer moves the model to `device` (the
// recipe's train.device) after building the task; the task moves what it feeds
// the model (batches, evaluation inputs) there too.
struct TaskContext {
  std::string run_dir;
  int rank = 0;
  int world_size = 1;
  std::shared_ptr<dist::ProcessGroup> tp = nullptr;
  Device device = kCPU;
};

// The recipe's train.device ("cpu", "cuda" = "cuda:0", "cuda:N"), checked:
// a CUDA device must be present (the error says why it is not).
Device training_device(const Json& resolved);
// The recipe's train.precision, checked: false for "fp32", true for "bf16"
// (forward passes under AutocastGuard(bf16), loom/ops/autocast.hpp).
bool bf16_precision(const Json& resolved);

// The schema (defaults) for the recipe's task, chosen by recipe["model"]["kind"].
Json task_schema(const Json& recipe);
// Builds the task of a resolved recipe.
std::unique_ptr<Task> make_task(const Json& resolved, const TaskContext& context);
// The training loader options of a resolved recipe: train.batch_size per rank,
// train.seed and train.num_workers, sharded over the context's ranks (so the
// ranks together see the batches one process would with batch_size * world_size).
data::LoaderOptions training_loader_options(const Json& resolved, const TaskContext& context);
// Names of the registered model kinds.
std::vector<std::string> task_kinds();

}  // namespace loom::train
