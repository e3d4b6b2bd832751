// Locating a run's evaluation scenes (see eval_scenes.hpp).
#include "eval_scenes.hpp"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace loom::serve {

EvalScenes find_eval_scenes(const std::string& run_dir) {
  EvalScenes out;
  const fs::path config_path = fs::path(run_dir) / "config.json";
  std::ifstream in(config_path);
  nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
  const auto* root = config.is_object() && config.contains("data") && config["data"].is_object() &&
                             config["data"].contains("root") && config["data"]["root"].is_string()
                         ? &config["data"]["root"]
                         : nullptr;
  if (!root) {
    out.missing = config_path.string() + " names no data.root";
    return out;
  }
  fs::path dir = root->get<std::string>();
  if (dir.is_relative() && !fs::exists(dir / "eval") && fs::exists(fs::path(run_dir) / dir / "eval"))
    dir = fs::path(run_dir) / dir;
  if (!fs::exists(dir / "eval" / "captions.jsonl")) {
    out.missing = "the run's dataset " + dir.string() + " has no eval/captions.jsonl";
    return out;
  }
  try {
    out.dataset = std::make_unique<data::trimodal::TrimodalDataset>(dir.string(), "eval");
    out.root = dir.string();
  } catch (const std::exception& e) {
    out.missing = e.what();
  }
  return out;
}

}  // namespace loom::serve
