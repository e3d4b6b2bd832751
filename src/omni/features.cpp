#include "loom/omni/features.hpp"

#include <algorithm>
#include <cmath>

#include "loom/audio/mel.hpp"
#include "loom/audio/wav.hpp"
#include "loom/ops/creation.hpp"

namespace loom::omni {

Tensor speech_features(const std::vector<float>& samples, int64_t frames, Tensor* valid) {
  LOOM_CHECK(frames > 0, "speech_features: frames must be positive");
  const audio::MelOptions mo;
  const Tensor mel = audio::log_mel_spectrogram(samples, mo);
  const int64_t keep = std::min(frames, mel.size(0)), c = mo.n_mels;
  Tensor out = zeros({frames, c}, DType::f32);
  const float* m = mel.data<float>();
  float* o = out.data<float>();
  for (int64_t k = 0; k < c; ++k) {
    double s = 0, s2 = 0;
    for (int64_t t = 0; t < keep; ++t) s += m[t * c + k];
    const double mean = s / static_cast<double>(keep);
    for (int64_t t = 0; t < keep; ++t) s2 += (m[t * c + k] - mean) * (m[t * c + k] - mean);
    const double inv = 1.0 / std::sqrt(s2 / static_cast<double>(keep) + 1e-5);
    for (int64_t t = 0; t < keep; ++t) o[t * c + k] = static_cast<float>((m[t * c + k] - mean) * inv);
  }
  if (valid) {
    *valid = zeros({frames}, DType::boolean);
    std::fill(valid->data<bool>(), valid->data<bool>() + keep, true);
  }
  return out;
}

Tensor speech_features_from_wav(const std::string& path, int64_t frames, Tensor* valid) {
  const audio::Wav wav = audio::read_wav(path);
  LOOM_CHECK(wav.sample_rate == 16000, path, " has sample rate ", wav.sample_rate, ", expected 16000");
  return speech_features(audio::to_mono_float(wav), frames, valid);
}

Tensor image_from_rgb8(const uint8_t* src, int64_t h, int64_t w) {
  Tensor out = empty({3, h, w}, DType::f32);
  float* dst = out.data<float>();
  for (int64_t p = 0; p < h * w; ++p)
    for (int c = 0; c < 3; ++c) dst[c * h * w + p] = src[p * 3 + c] / 255.0f;
  return out;
}

}  // namespace loom::omni
