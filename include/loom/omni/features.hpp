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

// The real-frame mask of a clip: bool [frames], the first `real` true.
Tensor speech_valid_frames(int64_t frames, int64_t real);

// The features above computed where the samples are (on a GPU: cuFFT
// spectra, the mel projection and the normalisation on the device), for a
// batch: the host then only decodes audio.
// The samples `frames` frames read: (frames - 1) * hop + win (16 kHz).
int64_t speech_span(int64_t frames);
// A 16 kHz WAV file's samples as the batched features read them: f32
// [speech_span(frames)], cropped or zero-padded; `valid` gets the real-frame
// mask bool [frames], as speech_features would.
Tensor speech_samples_from_wav(const std::string& path, int64_t frames, Tensor* valid);
// samples f32 [B, speech_span(F)] and valid bool [B, F] (both on one
// device) -> f32 [B, F, 80] on that device: row b equals speech_features of
// row b's real samples (to f32 rounding; the normalisation is in f32 here).
Tensor speech_features(const Tensor& samples, const Tensor& valid);

// HWC RGB u8 pixels -> CHW f32 in [0, 1].
Tensor image_from_rgb8(const uint8_t* hwc, int64_t height, int64_t width);

}  // namespace loom::omni
