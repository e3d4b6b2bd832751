// Saving, verifying, loading, listing and pruning checkpoints
// (loom/io/checkpoint.hpp).
#include "loom/io/checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "loom/io/atomic_file.hpp"
#include "loom/io/manifest.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/io/sha256.hpp"
#include "strict_json.hpp"

namespace loom::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRequiredFiles[] = {kCheckpointWeights, kCheckpointOptimizer, kCheckpointState};

// Writes one safetensors file into the temporary directory, hashing on the way.
ManifestEntry write_tensors(const AtomicDir& dir, const char* name, const NamedTensors& tensors) {
  AtomicFile file(dir.file(name));
  Sha256 hash;
  write_safetensors(
      [&](const void* p, size_t n) {
        file.write(p, n);
        hash.update(p, n);
      },
      tensors);
  const uint64_t bytes = file.bytes_written();
  file.commit();
  return {name, bytes, hash.hex_digest()};
}

ManifestEntry write_text(const AtomicDir& dir, const char* name, const std::string& text) {
  atomic_write_file(dir.file(name), text);
  return {name, text.size(), sha256_hex(text)};
}

std::string read_small_file(const std::string& path, uint64_t cap, const char* what) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  LOOM_CHECK(!ec, "checkpoint: ", what, " '", path, "' cannot be read: ", ec.message());
  LOOM_CHECK(size <= cap, "checkpoint: ", what, " '", path, "' is ", size, " bytes (at most ", cap, " expected)");
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), "checkpoint: ", what, " '", path, "' cannot be opened");
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  LOOM_CHECK(static_cast<uint64_t>(in.gcount()) == size, "checkpoint: ", what, " '", path,
             "' changed while being read");
  return text;
}

// Parses "step-<digits>"; returns -1 for any other name.
int64_t parse_step_name(const std::string& name) {
  constexpr std::string_view prefix = "step-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 18) return -1;
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

}  // namespace

void save_checkpoint(const std::string& dir, const CheckpointContent& content) {
  std::string state_text;
  try {
    state_text = content.state.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    LOOM_FAIL("save_checkpoint: '", dir, "': state is not serialisable (", e.what(), ")");
  }
  AtomicDir tmp(dir);
  Manifest manifest;
  manifest.files.push_back(write_tensors(tmp, kCheckpointWeights, content.weights));
  manifest.files.push_back(write_tensors(tmp, kCheckpointOptimizer, content.optimizer));
  manifest.files.push_back(write_text(tmp, kCheckpointState, state_text));
  atomic_write_file(tmp.file(kCheckpointManifest), manifest_to_json(manifest));
  tmp.commit();
}

void verify_checkpoint(const std::string& dir) {
  std::error_code ec;
  LOOM_CHECK(fs::is_directory(dir, ec), "checkpoint: '", dir, "' is not a directory");
  const std::string manifest_path = dir + "/" + kCheckpointManifest;
  LOOM_CHECK(fs::exists(manifest_path, ec), "checkpoint: '", dir, "' has no ", kCheckpointManifest,
             " (incomplete or not a checkpoint)");
  const Manifest manifest =
      parse_manifest(read_small_file(manifest_path, kMaxManifestBytes, "manifest"), manifest_path);
  for (const char* name : kRequiredFiles)
    LOOM_CHECK(manifest.find(name) != nullptr, "checkpoint: '", manifest_path, "' does not list ", name);
  LOOM_CHECK(manifest.files.size() == std::size(kRequiredFiles), "checkpoint: '", manifest_path, "' lists ",
             manifest.files.size(), " files; expected exactly ", kCheckpointWeights, ", ", kCheckpointOptimizer, ", ",
             kCheckpointState);
  verify_manifest(dir, manifest);
}

CheckpointContent load_checkpoint(const std::string& dir) {
  verify_checkpoint(dir);  // everything is checked before anything is parsed
  CheckpointContent out;
  const std::string state_path = dir + "/" + kCheckpointState;
  const std::string state_text = read_small_file(state_path, UINT64_MAX, "state");
  out.state = detail::parse_strict_json(state_text.data(), state_text.size(), "checkpoint: '" + state_path + "'");
  out.weights = load_safetensors(dir + "/" + kCheckpointWeights);
  out.optimizer = load_safetensors(dir + "/" + kCheckpointOptimizer);
  return out;
}

std::string checkpoint_dir(const std::string& run_dir, int64_t step) {
  LOOM_CHECK(step >= 0, "checkpoint_dir: step ", step, " is negative");
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return run_dir + "/checkpoints/" + name;
}

int64_t checkpoint_step(const std::string& dir) {
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const int64_t step = parse_step_name(fs::path(path).filename().string());
  LOOM_CHECK(step >= 0, "checkpoint_step: '", dir, "' is not named step-<digits>");
  return step;
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  std::vector<std::pair<int64_t, std::string>> found;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const int64_t step = parse_step_name(name);  // rejects "*.tmp-*" leftovers too
    std::error_code dir_ec;
    if (step >= 0 && it->is_directory(dir_ec)) found.emplace_back(step, it->path().string());
  }
  LOOM_CHECK(!ec, "list_checkpoints: cannot read '", root.string(), "': ", ec.message());
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  return out;
}

std::string find_checkpoint(const std::string& path, const std::string& who) {
  const fs::path p(path);
  if (fs::exists(p / kCheckpointManifest) && fs::exists(p / kCheckpointState)) return path;
  LOOM_CHECK(fs::is_directory(p), who, ": '", path, "' is not a directory");
  const auto list = list_checkpoints(path);
  LOOM_CHECK(!list.empty(), who, ": '", path, "' is neither a checkpoint nor a run directory with checkpoints (no '",
             (p / "checkpoints").string(), "/step-*')");
  return list.back();
}

std::string run_of_checkpoint(const std::string& checkpoint) {
  return fs::path(checkpoint).lexically_normal().parent_path().parent_path().string();
}

void prune_checkpoints(const std::string& run_dir, size_t keep_last_k) {
  LOOM_CHECK(keep_last_k >= 1, "prune_checkpoints: keep_last_k must be at least 1 (got 0)");
  const auto all = list_checkpoints(run_dir);
  if (all.size() <= keep_last_k) return;
  for (size_t i = 0; i + keep_last_k < all.size(); ++i) {
    const std::string doomed = all[i] + ".tmp-" + std::to_string(::getpid()) + "-prune";
    std::error_code ec;
    fs::remove_all(doomed, ec);
    fs::rename(all[i], doomed, ec);
    LOOM_CHECK(!ec, "prune_checkpoints: cannot rename '", all[i], "' for removal: ", ec.message());
    fs::remove_all(doomed, ec);
    LOOM_CHECK(!ec, "prune_checkpoints: cannot remove '", doomed, "': ", ec.message());
  }
}

}  // namespace loom::io
