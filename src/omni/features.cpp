#include "loom/omni/features.hpp"

#include <algorithm>
#include <cmath>

#include "loom/audio/mel.hpp"
#include "loom/audio/wav.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/ops.hpp"

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
  if (valid) *valid = speech_valid_frames(frames, keep);
  return out;
}

Tensor speech_valid_frames(int64_t frames, int64_t real) {
  Tensor valid = zeros({frames}, DType::boolean);
  std::fill(valid.data<bool>(), valid.data<bool>() + std::min(frames, real), true);
  return valid;
}

namespace {

std::vector<float> read_16k(const std::string& path) {
  const audio::Wav wav = audio::read_wav(path);
  LOOM_CHECK(wav.sample_rate == 16000, path, " has sample rate ", wav.sample_rate, ", expected 16000");
  return audio::to_mono_float(wav);
}

}  // namespace

Tensor speech_features_from_wav(const std::string& path, int64_t frames, Tensor* valid) {
  return speech_features(read_16k(path), frames, valid);
}

int64_t speech_span(int64_t frames) {
  LOOM_CHECK(frames > 0, "speech_span: frames must be positive, got ", frames);
  const audio::MelOptions mo;
  return (frames - 1) * mo.hop_length + mo.win_length;
}

Tensor speech_samples_from_wav(const std::string& path, int64_t frames, Tensor* valid) {
  const std::vector<float> samples = read_16k(path);
  const int64_t span = speech_span(frames), n = static_cast<int64_t>(samples.size());
  Tensor out = zeros({span}, DType::f32);
  std::copy(samples.begin(), samples.begin() + std::min(n, span), out.data<float>());
  // Frames past the clip's last sample hold only padding, as in speech_features.
  *valid = speech_valid_frames(frames, audio::mel_frame_count(n));
  return out;
}

Tensor speech_features(const Tensor& samples, const Tensor& valid) {
  LOOM_CHECK(valid.defined() && valid.dtype() == DType::boolean && valid.dim() == 2, "speech_features: valid must be ",
             "bool [batch, frames], got ", valid.defined() ? shape_str(valid.shape()) : std::string("undefined"));
  const int64_t rows = valid.size(0), frames = valid.size(1);
  LOOM_CHECK(samples.defined() && samples.dim() == 2 && samples.size(0) == rows &&
                 samples.size(1) == speech_span(frames),
             "speech_features: samples must be [", rows, ", ", speech_span(frames), "] for ", frames,
             " frames, got ", samples.defined() ? shape_str(samples.shape()) : std::string("undefined"));
  LOOM_CHECK(samples.device() == valid.device(), "speech_features: samples on ", samples.device().str(),
             ", valid on ", valid.device().str());
  NoGradGuard no_grad;
  const Tensor mel = audio::log_mel_spectrogram(samples);  // [B, F, 80]
  const Tensor keep = valid.to(DType::f32).unsqueeze(2);   // [B, F, 1]
  // Per row and band over the real frames: mean 0, variance 1 (eps 1e-5);
  // zero in the padding. A row has at least one real frame.
  const Tensor count = sum(keep, {1}, true);
  const Tensor mean = div(sum(mul(mel, keep), {1}, true), count);
  const Tensor centred = mul(sub(mel, mean), keep);
  const Tensor var = div(sum(mul(centred, centred), {1}, true), count);
  return mul(centred, rsqrt(add(var, 1e-5)));
}

Tensor image_from_rgb8(const uint8_t* src, int64_t h, int64_t w) {
  Tensor out = empty({3, h, w}, DType::f32);
  float* dst = out.data<float>();
  for (int64_t p = 0; p < h * w; ++p)
    for (int c = 0; c < 3; ++c) dst[c * h * w + p] = src[p * 3 + c] / 255.0f;
  return out;
}

}  // namespace loom::omni
