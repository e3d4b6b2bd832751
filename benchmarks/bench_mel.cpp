// `loom-bench mel`: the log-mel spectrogram the audio encoder reads (the
// defaults of loom/audio/mel.hpp: 16 kHz, 25 ms frames every 10 ms, a
// 512-point FFT, 80 mel bands) over --seconds of a synthetic signal
// (default 10). Reports frames per second and the real-time factor (seconds
// of audio per second of compute). FLOPs per frame, counted for
// fraction_of_peak: windowing 400, a 256-point complex FFT 5 * 256 * 8 plus
// the real-input split 257 * 10, the power spectrum 257 * 3, the mel
// triangles on their support (each bin in at most two bands) 257 * 4, and 80
// logs counted as one each. The transform runs in double, so the f32 FMA
// peak overstates what it could reach.
#include <cmath>
#include <string>
#include <vector>

#include "bench.hpp"
#include "loom/audio/mel.hpp"
#include "loom/ops/creation.hpp"

namespace loom::bench {

void run_mel(const Options& opt) {
  const audio::MelOptions mel;
  const int64_t seconds = opt.integer("seconds", 10);
  std::vector<float> samples(static_cast<size_t>(seconds * mel.sample_rate));
  for (size_t i = 0; i < samples.size(); ++i) {  // a chirp from 100 Hz to 4 kHz with a little noise
    const double t = static_cast<double>(i) / mel.sample_rate;
    samples[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * (100 * t + 195 * t * t / seconds)) +
                                    0.01 * std::sin(12345.678 * static_cast<double>(i * i % 7919)));
  }
  const int64_t frames = audio::mel_frame_count(static_cast<int64_t>(samples.size()), mel);
  const double ms = median_ms(opt, [&] { Tensor m = audio::log_mel_spectrogram(samples, mel); });
  Record r = record("log_mel", std::to_string(seconds) + "s@16kHz_" + std::to_string(frames) + "x80", ms);
  r["frames_per_s"] = std::round(static_cast<double>(frames) / (ms * 1e-3));
  r["realtime_factor"] = std::round(static_cast<double>(seconds) / (ms * 1e-3));
  const double per_frame = 400 + 5 * 256 * 8 + 257 * 10 + 257 * 3 + 257 * 4 + 80;
  add_gflops(r, per_frame * static_cast<double>(frames), opt);
  emit(r);

  // The same features from a tensor (audio::log_mel_spectrogram(Tensor), what
  // omni::speech_features runs on the model's device): framing, the table's
  // power_spectrum entry, the mel product and the log as loom ops, in f32.
  const Tensor as_tensor = from_vector(samples, {static_cast<int64_t>(samples.size())});
  const double tensor_ms = median_ms(opt, [&] { Tensor m = audio::log_mel_spectrogram(as_tensor, mel); });
  Record t = record("log_mel_tensor", std::to_string(seconds) + "s@16kHz_" + std::to_string(frames) + "x80",
                    tensor_ms);
  t["frames_per_s"] = std::round(static_cast<double>(frames) / (tensor_ms * 1e-3));
  t["vs_vector"] = std::round(ms / tensor_ms * 100) / 100;  // > 1: the tensor path is faster
  add_gflops(t, per_frame * static_cast<double>(frames), opt);
  emit(t);
}

}  // namespace loom::bench
