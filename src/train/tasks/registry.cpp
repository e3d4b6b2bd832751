#include <map>

#include "loom/core/cuda.hpp"
#include "train/tasks/tasks.hpp"

namespace loom::train {

namespace {

struct Entry {
  Json (*schema)();
  std::unique_ptr<Task> (*make)(const Json&, const TaskContext&);
};

const std::map<std::string, Entry>& registry() {
  static const std::map<std::string, Entry> r{
      {"image_classifier", {image_classifier_schema, make_image_classification}},
      {"gpt", {causal_lm_schema, make_causal_lm}},
      {"omni", {omni_task::omni_schema, omni_task::make_omni}},
      {"omni_classify", {omni_task::omni_classify_schema, omni_task::make_omni_classify}},
  };
  return r;
}

const Entry& entry_for(const Json& recipe) {
  LOOM_CHECK(recipe.contains("model") && recipe["model"].is_object() && recipe["model"].contains("kind") &&
                 recipe["model"]["kind"].is_string(),
             "recipe: 'model.kind' must name the model (one of: image_classifier, gpt, omni, omni_classify)");
  const std::string kind = recipe["model"]["kind"];
  auto it = registry().find(kind);
  if (it == registry().end()) {
    std::string known;
    for (const auto& [k, e] : registry()) known += (known.empty() ? "" : ", ") + k;
    LOOM_FAIL("recipe: unknown model.kind '", kind, "' (known: ", known, ")");
  }
  return it->second;
}

}  // namespace

Json task_schema(const Json& recipe) {
  Json schema = common_schema();
  const Json sections = entry_for(recipe).schema();
  for (auto it = sections.begin(); it != sections.end(); ++it) schema[it.key()] = it.value();
  return schema;
}

std::unique_ptr<Task> make_task(const Json& resolved, const TaskContext& context) {
  return entry_for(resolved).make(resolved, context);
}

data::LoaderOptions training_loader_options(const Json& r, const TaskContext& context) {
  data::LoaderOptions lo;
  lo.batch_size = r["train"]["batch_size"];
  lo.seed = r["train"]["seed"];
  lo.num_workers = r["train"]["num_workers"];
  lo.rank = context.rank;
  lo.world_size = context.world_size;
  return lo;
}

Device training_device(const Json& r) {
  const Json& d = r["train"]["device"];
  LOOM_CHECK(d.is_string(), "recipe: train.device must be a string (\"cpu\", \"cuda\" or \"cuda:N\"), got ", d.dump());
  const std::string name = d;
  if (name == "cpu") return kCPU;
  int index = -1;
  if (name == "cuda") index = 0;
  else if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9 &&
           name.find_first_not_of("0123456789", 5) == std::string::npos)
    index = std::stoi(name.substr(5));
  LOOM_CHECK(index >= 0, "recipe: train.device '", name, "' is not a device (\"cpu\", \"cuda\" or \"cuda:N\")");
  LOOM_CHECK(cuda_available(), "recipe: train.device '", name, "': ", cuda_unavailable_reason());
  LOOM_CHECK(index < cuda_device_count(), "recipe: train.device '", name, "': this machine has ",
             cuda_device_count(), " CUDA device(s)");
  return cuda_device(index);
}

bool bf16_precision(const Json& r) {
  const Json& p = r["train"]["precision"];
  LOOM_CHECK(p.is_string() && (p == "fp32" || p == "bf16"), "recipe: train.precision must be \"fp32\" or \"bf16\", got ",
             p.dump());
  return p == "bf16";
}

std::vector<std::string> task_kinds() {
  std::vector<std::string> out;
  for (const auto& [k, e] : registry()) out.push_back(k);
  return out;
}

}  // namespace loom::train
