// Internal: parsing and validating a safetensors JSON header against the size
// of the data block that follows it. Shared by the in-memory parser, the file
// loader (which reads tensors straight into their storage) and the metadata
// reader, so all three apply the same rules (listed in loom/io/safetensors.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loom/io/safetensors.hpp"

namespace loom::io::detail {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // within the data block
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by data offset
  Metadata metadata;
};

// `where` names the file in messages.
SafetensorsHeader parse_safetensors_header(const char* json, size_t n, uint64_t data_size, const std::string& where);

// Reads the 8-byte little-endian header length and checks it against the
// cap and the file size; returns N.
uint64_t check_safetensors_prefix(const uint8_t* prefix8, uint64_t file_size, const std::string& where);

}  // namespace loom::io::detail
