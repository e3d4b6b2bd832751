#include "loom/train/recipe.hpp"

#include <fstream>
#include <sstream>

#include "loom/core/error.hpp"
#include "loom/train/adapt.hpp"

namespace loom::train {

Json read_recipe(const std::string& path) {
  std::ifstream file(path);
  LOOM_CHECK(file.good(), "recipe '", path, "': cannot open the file");
  std::stringstream text;
  text << file.rdbuf();
  try {
    Json j = Json::parse(text.str());
    LOOM_CHECK(j.is_object(), "recipe '", path, "': the top level must be a JSON object");
    return j;
  } catch (const Json::parse_error& e) {
    LOOM_FAIL("recipe '", path, "': invalid JSON: ", e.what());
  }
}

void apply_override(Json& recipe, const std::string& assignment) {
  const auto eq = assignment.find('=');
  LOOM_CHECK(eq != std::string::npos && eq > 0, "--set '", assignment, "': expected KEY.PATH=VALUE");
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  Json value;
  try {
    value = Json::parse(text);
  } catch (const Json::parse_error&) {
    value = text;  // a bare word is a string
  }
  Json* node = &recipe;
  std::stringstream parts(path);
  std::string key;
  std::vector<std::string> keys;
  while (std::getline(parts, key, '.')) {
    LOOM_CHECK(!key.empty(), "--set '", assignment, "': empty key in '", path, "'");
    keys.push_back(key);
  }
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    Json& next = (*node)[keys[i]];
    if (next.is_null()) next = Json::object();
    LOOM_CHECK(next.is_object(), "--set '", assignment, "': '", keys[i], "' is not a section");
    node = &next;
  }
  (*node)[keys.back()] = value;
}

namespace {

const char* type_name(const Json& j) {
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  if (j.is_object()) return "an object";
  return "null";
}

bool same_kind(const Json& value, const Json& def) {
  if (def.is_number_integer()) return value.is_number_integer();
  if (def.is_number()) return value.is_number();
  return std::string(type_name(value)) == type_name(def);
}

void merge(const Json& given, const Json& schema, Json& out, const std::string& prefix, const std::string& where) {
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    LOOM_CHECK(schema.contains(it.key()), where, ": unknown key '", path, "'");
    const Json& def = schema[it.key()];
    if (def.is_object()) {
      LOOM_CHECK(it->is_object(), where, ": '", path, "' must be an object, got ", type_name(*it));
      merge(*it, def, out[it.key()], path, where);
    } else {
      LOOM_CHECK(same_kind(*it, def), where, ": '", path, "' must be ", def.is_number_integer() ? "an integer" : type_name(def),
                 ", got ", it->dump());
      out[it.key()] = *it;
    }
  }
}

}  // namespace

Json resolve(const Json& recipe, const Json& schema, const std::string& where) {
  LOOM_CHECK(recipe.is_object(), where, ": a recipe must be a JSON object");
  Json out = schema;
  merge(recipe, schema, out, "", where);
  return out;
}

Json common_schema() {
  Json schema{
      {"train",
       {{"steps", 1000},
        {"batch_size", 32},
        {"grad_accum", 1},
        {"seed", 0},
        {"log_every", 10},
        {"eval_every", 0},          // 0: only at the end
        {"checkpoint_every", 0},    // 0: only at the end
        {"keep_checkpoints", 3},
        {"clip_grad_norm", 1.0},    // 0: off
        {"max_bad_steps", 5},       // non-finite losses/gradients in a row before stopping
        {"num_workers", 2},
        {"threads", 0},             // 0: the machine's default
        {"device", "cpu"},          // "cpu", "cuda" (cuda:0) or "cuda:N"
        {"precision", "fp32"},      // or "bf16": autocast (loom/ops/autocast.hpp), f32 master weights
        {"deterministic", false}}}, // order-fixed kernels where the device would use atomics (loom/core/deterministic.hpp)
      {"optim",
       {{"name", "adamw"},
        {"lr", 1e-3},
        {"weight_decay", 0.01},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"momentum", 0.9},
        {"nesterov", false},
        {"schedule", "cosine"},
        {"warmup_steps", 0},
        {"min_lr_ratio", 0.1}}},
      // data_parallel: implied by several ranks; zero: ZeRO-1 AdamW over the
      // data-parallel ranks; tp_size: ranks per tensor-parallel group (gpt).
      {"dist", {{"data_parallel", false}, {"zero", false}, {"tp_size", 1}, {"backend", "auto"}}},
      {"eval", {{"max_batches", 0}}},  // 0: the whole evaluation set
  };
  // fine-tuning: init_from, lora, freeze, trainable (loom/train/adapt.hpp)
  schema["train"].update(adaptation_schema());
  return schema;
}

}  // namespace loom::train
