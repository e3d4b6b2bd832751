// Crash-safe training checkpoints.
//
// A checkpoint is a directory, by convention RUN/checkpoints/step-NNNNNNNN/,
// holding weights.safetensors, optimizer.safetensors, state.json and
// manifest.json (each file's size and SHA-256; see loom/io/manifest.hpp).
// It is built under a temporary name and renamed into place with fsyncs
// (loom/io/atomic_file.hpp), so a process killed at any moment leaves either
// no new checkpoint or a complete one, and the previous ones untouched.
// Loading checks the manifest against every file before parsing any of them:
// a truncated or corrupted checkpoint is refused whole, never half-loaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::io {

struct CheckpointContent {
  std::vector<std::pair<std::string, Tensor>> weights;
  std::vector<std::pair<std::string, Tensor>> optimizer;
  // Step, RNG states, loader position, resolved recipe: opaque to this layer.
  nlohmann::json state = nlohmann::json::object();
};

// The files of a checkpoint, in the order they are written (manifest last).
inline constexpr const char* kCheckpointWeights = "weights.safetensors";
inline constexpr const char* kCheckpointOptimizer = "optimizer.safetensors";
inline constexpr const char* kCheckpointState = "state.json";
inline constexpr const char* kCheckpointManifest = "manifest.json";

// Writes the checkpoint directory `dir` atomically (replacing an existing one
// atomically); creates missing parent directories.
void save_checkpoint(const std::string& dir, const CheckpointContent& content);

// Verifies the manifest (it must list exactly the three files above) and
// every listed file's size and SHA-256, then loads. Throws naming the file
// and what mismatched. Files the manifest does not list are ignored.
CheckpointContent load_checkpoint(const std::string& dir);

// Only the verification step of load_checkpoint.
void verify_checkpoint(const std::string& dir);

// RUN/checkpoints/step-NNNNNNNN (at least 8 digits).
std::string checkpoint_dir(const std::string& run_dir, int64_t step);

// The checkpoint directories under RUN/checkpoints/, oldest step first.
// Names other than step-<digits> (such as the step-N.tmp-PID leftovers of a
// killed writer) are ignored. A run without checkpoints gives an empty list.
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// The checkpoint a user names: `path` itself when it is a checkpoint
// directory (it holds a manifest and a state), else the newest checkpoint of
// the run directory `path`. Errors start with `who` ("--resume", ...) and say
// what `path` lacks.
std::string find_checkpoint(const std::string& path, const std::string& who);
// The run directory a checkpoint belongs to (RUN/checkpoints/step-N -> RUN).
std::string run_of_checkpoint(const std::string& checkpoint_dir);

// The step of a checkpoint directory path ("…/step-00000042" -> 42).
int64_t checkpoint_step(const std::string& checkpoint_dir);

// Deletes all but the newest `keep_last_k` (>= 1) checkpoints. Each is first
// renamed to a temporary name, so a half-deleted one is never listed.
void prune_checkpoints(const std::string& run_dir, size_t keep_last_k);

}  // namespace loom::io
