// Run directories for end-to-end tests: a fresh temporary directory per name
// and process, and the metrics.jsonl lines loom-train wrote there.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <loom/train/recipe.hpp>

namespace loom::test {

// <temp>/loom-e2e-NAME-PID, removed if it exists.
inline std::string fresh_dir(const std::string& name) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("loom-e2e-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

inline std::vector<train::Json> read_metrics(const std::string& run) {
  std::vector<train::Json> out;
  std::ifstream in(std::filesystem::path(run) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(train::Json::parse(line));
  return out;
}

}  // namespace loom::test
