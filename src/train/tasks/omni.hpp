// Task "omni" (internal): the omni-modal model pretrained on the tri-modal
// dataset with the weighted objectives of model.losses; evaluation in
// omni_eval.cpp.
#pragma once

#include <memory>

#include "loom/omni/model.hpp"
#include "train/tasks/omni_data.hpp"
#include "train/tasks/tasks.hpp"

namespace loom::train::omni_task {

// The model section shared by the omni tasks (defaults).
Json omni_model_schema();
// The caption vocabulary: RUN_DIR/tokenizer.json when there is one, else a
// BPE trained (deterministically) on the training captions of `scenes`.
Vocabulary omni_vocabulary(const std::string& run_dir, const OmniScenes& scenes, int64_t vocab_size);
// The model of a resolved recipe for a vocabulary.
std::shared_ptr<omni::OmniModel> make_omni_model(const Json& model_section, const Vocabulary& vocab, Generator* gen);
// Checks data.root holds a built dataset and opens one split.
std::shared_ptr<OmniScenes> open_scenes(const Json& recipe, const std::string& split, int64_t limit);

// Everything evaluation needs from the task.
struct EvalContext {
  omni::OmniModel& model;
  const Vocabulary& vocab;
  const OmniScenes& eval;
  const Json& recipe;
  Device device;  // the model's: inputs are built on the host and moved there
};
Json evaluate_omni(const EvalContext& context);


}  // namespace loom::train::omni_task
