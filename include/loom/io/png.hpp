// PNG output for pictures of what a model sees (evaluation examples): 8-bit
// RGB or grayscale, one IDAT chunk deflated with zlib, filter type 0.
#pragma once

#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::io {

// pixels: u8 [H, W, 3] (RGB) or [H, W] (grayscale). Written atomically.
void write_png(const std::string& path, const Tensor& pixels);
// The bytes of that PNG file.
std::vector<uint8_t> encode_png(const Tensor& pixels);

}  // namespace loom::io
