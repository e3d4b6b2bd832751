// Pictures and speech from request bytes into the model's inputs, with the
// preprocessing of training (loom/omni/features.hpp).
//
// A picture is a PNG of exactly side x side pixels (the model's image size,
// 64): RGB as is, gray replicated to RGB, an alpha channel composited over
// black (the scenes' background; browsers export canvases as RGBA). Speech is
// a 16-bit PCM WAV, mono or stereo (averaged), at any sample rate (resampled
// to 16 kHz). Every problem is an ApiError (400) naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::serve {

// f32 [3, side, side] in [0, 1].
Tensor image_from_png(const std::vector<uint8_t>& png, int64_t side, const std::string& field);
// 16 kHz mono samples in [-1, 1).
std::vector<float> speech_from_wav(const std::vector<uint8_t>& wav, const std::string& field);

}  // namespace loom::serve
