// The safetensors format: the interchange format for weights (the Hugging
// Face ecosystem reads and writes it) and the tensor payload of loom
// checkpoints.
//
// Layout: an 8-byte little-endian u64 N, N bytes of JSON header, then one
// data block. The header is an object mapping each tensor name to
//   {"dtype": "F32"|"F64"|"BF16"|"F16"|"I32"|"I64"|"U8"|"BOOL",
//    "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// (offsets relative to the data block), plus an optional
// "__metadata__": {string: string}. The writer pads the header with spaces
// to a multiple of 8 bytes and stores each tensor contiguous, row-major,
// little-endian, back to back in the order given.
//
// The reader is strict (a file is untrusted input; it never crashes, never
// reads out of bounds, and allocates only after every size is checked
// against the file). It rejects, with a loom::Error naming the file and the
// field: a file shorter than 8 bytes; a header length beyond the file or
// beyond kMaxSafetensorsHeader; a header that is not a JSON object, has a
// duplicate key, or an entry that is not an object, lacks or has an unknown
// key, or has a value of the wrong type; dtypes loom does not have; shape
// entries that are negative, not integers, or whose product (of non-zero
// dims) does not fit in int64; shape x dtype size != end - begin;
// begin > end; offsets beyond the data block; overlapping tensors; data-block
// bytes that belong to no tensor (as the reference implementation does);
// BOOL elements other than 0 or 1.
//
// Tensors come back in file order (by data offset; the writer keeps the
// caller's order, so a round trip preserves it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

// The same cap as the reference implementation (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

// Writes `path` atomically (see loom/io/atomic_file.hpp). Names must be
// unique and not "__metadata__"; tensors must be on the CPU and may be any
// view (non-contiguous ones are written contiguous).
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});

// The same bytes, handed to `sink` in order (checkpoints hash while writing).
using ByteSink = std::function<void(const void* data, size_t n)>;
void write_safetensors(const ByteSink& sink, const NamedTensors& tensors, const Metadata& metadata = {});

NamedTensors load_safetensors(const std::string& path);
// Reads and validates only the header.
Metadata safetensors_metadata(const std::string& path);

struct SafetensorsContents {
  NamedTensors tensors;
  Metadata metadata;
};
// Parses a whole file held in memory; `name_for_errors` names it in messages.
SafetensorsContents parse_safetensors(const uint8_t* data, size_t size, const std::string& name_for_errors);

// "F32", "BF16", ... and back (throws naming `name_for_errors` on others).
const char* safetensors_dtype_name(DType dtype);
DType safetensors_dtype_from_name(const std::string& name, const std::string& name_for_errors);

}  // namespace loom::io
