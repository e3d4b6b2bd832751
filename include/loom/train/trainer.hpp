// The training loop: gradient accumulation, clipping, learning-rate schedule,
// non-finite step detection, metrics.jsonl, progress display, periodic
// evaluation and crash-safe checkpoints with exact resume.
//
// A run directory holds config.json (the resolved recipe), metrics.jsonl,
// checkpoints/step-NNNNNNNN/ and eval.json.
#pragma once

#include <string>

#include "loom/train/recipe.hpp"

namespace loom::train {

struct RunOptions {
  std::string out_dir;     // the run directory to write
  std::string resume_dir;  // a run directory or one checkpoint directory; empty: fresh start
  bool quiet = false;      // no progress display
  int64_t stop_at_step = 0;  // > 0: checkpoint and stop there, as a preempted job would (the schedule still spans train.steps)
};

struct RunSummary {
  int64_t steps = 0;
  double final_loss = 0;
  int64_t skipped_steps = 0;
  Json eval;  // the eval.json contents
};

// Trains `resolved` (a recipe after resolve()) and returns what it did.
RunSummary run_training(const Json& resolved, const RunOptions& options);

// Evaluates a trained run without training: `run_or_checkpoint` is a run
// directory (its newest checkpoint is used) or one checkpoint directory. The
// recipe is the run's config.json with `overrides` applied (e.g. eval
// limits; the model section must stay as trained). Writes RUN/eval.json
// (or `out_path` when given) and returns its contents.
Json evaluate_run(const std::string& run_or_checkpoint, const std::vector<std::string>& overrides,
                  const std::string& out_path = "");

// Reads a recipe file, applies --set overrides and resolves it against its task schema.
Json load_resolved_recipe(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace loom::train
