// The registered tasks (internal): each provides a schema and a factory.
#pragma once

#include "loom/train/task.hpp"

namespace loom::train {

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
