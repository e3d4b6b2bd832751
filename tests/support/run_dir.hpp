// Run directories for end-to-end tests: a fresh temporary directory per name
// and process, and the metrics.jsonl lines loom-train wrote there.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <loom/train/recipe.hpp>

namespace loom::test {

// This process's folder <temp>/loom-e2e-PID. It is created on first use and
// removed, with everything the tests wrote in it, when the process exits;
// LOOM_KEEP_TEST_DIRS=1 keeps it for a post-mortem.
inline const std::filesystem::path& process_dir() {
  struct Owned {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("loom-e2e-" + std::to_string(::getpid()));
    Owned() {
      std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
    }
    ~Owned() {
      const char* keep = std::getenv("LOOM_KEEP_TEST_DIRS");
      if (keep && std::string(keep) == "1") return;
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Owned owned;
  return owned.path;
}

// <temp>/loom-e2e-PID/NAME, removed if it exists (not created).
inline std::string fresh_dir(const std::string& name) {
  const std::filesystem::path p = process_dir() / name;
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
