// The IDX format of (Fashion-)MNIST: a big-endian header (magic 0x0000TTNN,
// TT the element type, NN the number of dims, then NN u32 sizes) followed by
// the elements. Files may be gzip-compressed (read through zlib).
#pragma once

#include <string>

#include "loom/core/tensor.hpp"

namespace loom::data {

// Reads an IDX file (.gz or raw) into a tensor of its element type (u8 for
// MNIST images [N, 28, 28] and labels [N]). Throws loom::Error naming the file
// and the problem for a missing, truncated or malformed file.
Tensor read_idx(const std::string& path);

}  // namespace loom::data
