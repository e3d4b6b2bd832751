// PNG files: output for pictures of what a model sees (evaluation examples)
// and input for pictures sent to a served model.
//
// The encoder writes 8-bit RGB or grayscale, one IDAT chunk deflated with
// zlib, filter type 0. The decoder reads the common subset: bit depth 8,
// colour types gray (0), RGB (2), gray + alpha (4) and RGBA (6), not
// interlaced, any of the five row filters, IDAT split over any number of
// chunks. It is strict (a file is untrusted input): the signature, IHDR
// first, every chunk's CRC, the inflated size and IEND are checked, and each
// error is a loom::Error naming the source and what is wrong or unsupported
// (palette images, 16-bit samples, Adam7 interlacing, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::io {

// pixels: u8 [H, W, 3] (RGB) or [H, W] (grayscale). Written atomically.
void write_png(const std::string& path, const Tensor& pixels);
// The bytes of that PNG file.
std::vector<uint8_t> encode_png(const Tensor& pixels);

// The pixels of a PNG file as u8 [H, W, C], C the file's channels: 1 (gray),
// 2 (gray, alpha), 3 (RGB) or 4 (RGBA). Pictures above 2^24 pixels are
// refused. `name_for_errors` starts every error message.
Tensor decode_png(const uint8_t* data, size_t size, const std::string& name_for_errors);

}  // namespace loom::io
