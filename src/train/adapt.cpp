#include "loom/train/adapt.hpp"

#include <filesystem>
#include <set>

#include "loom/io/checkpoint.hpp"
#include "loom/nn/lora.hpp"
#include "loom/nn/peft.hpp"

namespace fs = std::filesystem;

namespace loom::train {

Json adaptation_schema() {
  return Json{{"init_from", ""},
              {"lora",
               {{"rank", 0},
                {"alpha", 16.0},
                {"rslora", false},
                {"dropout", 0.0},
                {"targets", Json::array()},
                {"exclude", Json::array()}}},
              {"freeze", Json::array()},
              {"trainable", Json::array()}};
}

namespace {

std::vector<std::string> strings(const Json& list, const char* key) {
  std::vector<std::string> out;
  for (const Json& v : list) {
    LOOM_CHECK(v.is_string(), "recipe: train.", key, " must list strings, got ", v.dump());
    out.push_back(v);
  }
  return out;
}

// Sets requires_grad on the parameters matching any pattern; every pattern must match.
void set_trainable(nn::Module& model, const std::vector<std::string>& patterns, bool on, const char* key) {
  for (const auto& pattern : patterns) {
    bool hit = false;
    for (auto& [name, p] : model.named_parameters()) {
      if (!nn::name_matches(pattern, name)) continue;
      p.requires_grad_(on);
      hit = true;
    }
    LOOM_CHECK(hit, "recipe: train.", key, " pattern '", pattern, "' matches no parameter (names look like '",
               model.named_parameters().front().first, "')");
  }
}

}  // namespace

std::string adapt_model(nn::Module& model, const Json& tr, bool resuming, Generator* gen) {
  std::string loaded;
  const std::string init = tr["init_from"];
  if (!init.empty() && !resuming) {
    const std::string ckpt = io::find_checkpoint(init, "recipe: train.init_from");
    auto weights = io::load_checkpoint(ckpt).weights;
    // Prompt-tuning tokens are new in a fine-tuned model: they keep their
    // initial values (as LoRA parameters do in load_base_state_dict).
    std::set<std::string> saved;
    for (const auto& [name, t] : weights) saved.insert(name);
    for (const auto& [name, p] : model.named_parameters())
      if ((name.rfind("prompt.", 0) == 0 || name.find(".prompt.") != std::string::npos) && !saved.count(name))
        weights.emplace_back(name, p.detach().clone());
    nn::load_base_state_dict(model, weights);
    loaded = ", initialised from " + ckpt;
  }
  const Json& lora = tr["lora"];
  if (lora["rank"].get<int64_t>() > 0) {
    nn::LoraOptions o;
    o.rank = lora["rank"];
    o.alpha = lora["alpha"];
    o.rslora = lora["rslora"];
    o.dropout = lora["dropout"];
    o.targets = strings(lora["targets"], "lora.targets");
    o.exclude = strings(lora["exclude"], "lora.exclude");
    const auto layers = nn::apply_lora(model, "default", o, gen);
    nn::mark_only_lora_trainable(model);
    loaded += ", LoRA rank " + std::to_string(o.rank) + " on " + std::to_string(layers.size()) + " layers";
  }
  set_trainable(model, strings(tr["freeze"], "freeze"), false, "freeze");
  set_trainable(model, strings(tr["trainable"], "trainable"), true, "trainable");
  for (auto& p : model.parameters())
    if (!p.requires_grad()) p.zero_grad();
  return nn::trainable_summary(model).str() + loaded;
}

}  // namespace loom::train
