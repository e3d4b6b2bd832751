// Model inputs from raw media: log-mel features from speech, float images
// from 8-bit pixels (the same preprocessing in training, evaluation and
// serving).
#pragma once

#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::omni {

// The 80-band log-mel (loom/audio/mel.hpp defaults) of 16 kHz mono samples,
// cropped or zero-padded to `frames`, normalised per band over its real
// frames (mean 0, variance 1); `valid` (optional) gets the real-frame mask
// bool [frames]. Returns f32 [frames, 80].
Tensor speech_features(const std::vector<float>& samples_16k, int64_t frames, Tensor* valid = nullptr);
// The same from a WAV file, which must be 16 kHz (errors name the file).
Tensor speech_features_from_wav(const std::string& path, int64_t frames, Tensor* valid = nullptr);

// HWC RGB u8 pixels -> CHW f32 in [0, 1].
Tensor image_from_rgb8(const uint8_t* hwc, int64_t height, int64_t width);

}  // namespace loom::omni
