// A checkpoint's manifest.json: the list of its files with their byte sizes
// and SHA-256 digests. It is written last and checked first, so a truncated,
// bit-flipped or incomplete checkpoint is refused before any of its files is
// parsed.
//
//   {"format": "loom-checkpoint", "version": 1,
//    "files": [{"name": "weights.safetensors", "bytes": 1234, "sha256": "<64 hex>"}, ...]}
//
// The parser is strict: unknown or duplicate keys, names that are not plain
// file names (no '/', not "." or ".."), repeated names, sizes that are not
// non-negative integers and digests that are not 64 lowercase hex characters
// are all refused, naming the file and the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::io {

struct ManifestEntry {
  std::string name;  // a file in the checkpoint directory
  uint64_t bytes = 0;
  std::string sha256;  // lowercase hex
};

struct Manifest {
  std::vector<ManifestEntry> files;
  const ManifestEntry* find(const std::string& name) const;
};

inline constexpr const char* kManifestFormat = "loom-checkpoint";
inline constexpr int kManifestVersion = 1;
inline constexpr uint64_t kMaxManifestBytes = 1 << 20;

std::string manifest_to_json(const Manifest& manifest);
Manifest parse_manifest(const std::string& text, const std::string& name_for_errors);

// Size and SHA-256 of a file on disk.
ManifestEntry describe_file(const std::string& dir, const std::string& name);

// Checks every listed file in `dir`: present, of the listed size, with the
// listed digest. Throws naming the file and what mismatched.
void verify_manifest(const std::string& dir, const Manifest& manifest);

}  // namespace loom::io
