// The registered tasks (internal): each provides a schema and a factory.
#pragma once

#include <functional>

#include "loom/train/task.hpp"

namespace loom::train {

// Accuracy and mean cross-entropy of `logits` (input -> [N, classes]) over a
// labelled dataset ({input, label} examples) in eval mode without autograd,
// with chance 1/classes: {"metrics", "chance", "n"}. max_batches > 0 stops early.
// Inputs and labels are moved to `device` (the model's) first.
Json classification_eval(nn::Module& model, std::shared_ptr<data::Dataset> test, int64_t batch_size,
                         int64_t max_batches, int64_t classes, Device device,
                         const std::function<Tensor(const Tensor&)>& logits);

Json image_classifier_schema();
std::unique_ptr<Task> make_image_classification(const Json& resolved, const TaskContext& context);
Json causal_lm_schema();
std::unique_ptr<Task> make_causal_lm(const Json& resolved, const TaskContext& context);
namespace omni_task {
Json omni_schema();
std::unique_ptr<Task> make_omni(const Json& resolved, const TaskContext& context);
Json omni_classify_schema();
std::unique_ptr<Task> make_omni_classify(const Json& resolved, const TaskContext& context);
}  // namespace omni_task

}  // namespace loom::train
