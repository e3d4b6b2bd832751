// WAV files: 16-bit PCM, mono or stereo, any sample rate.
//
// The speech of the tri-modal dataset is stored as WAV (16 kHz mono) and read
// back in C++ by the audio encoders' data path. The parser is strict (a file
// is untrusted input): it needs "RIFF" + size + "WAVE", a "fmt " chunk of at
// least 16 bytes with format 1 (PCM; WAVE_FORMAT_EXTENSIBLE is rejected),
// 1 or 2 channels, 16 bits per sample, block_align = channels * 2 and
// byte_rate = rate * block_align, then a "data" chunk whose size fits in the
// file and is a whole number of frames. Unknown chunks (LIST, fact, ...) are
// skipped (with their pad byte). Every error is a loom::Error naming the
// file and the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom::audio {

struct Wav {
  int sample_rate = 16000;
  int channels = 1;
  std::vector<int16_t> samples;  // interleaved, frames() * channels values

  int64_t frames() const { return channels > 0 ? static_cast<int64_t>(samples.size()) / channels : 0; }
  double seconds() const { return sample_rate > 0 ? static_cast<double>(frames()) / sample_rate : 0.0; }
};

Wav read_wav(const std::string& path);
Wav parse_wav(const uint8_t* data, size_t size, const std::string& name_for_errors);

// The canonical 44-byte-header file.
std::string encode_wav(const Wav& wav);
// Writes `path` atomically (loom/io/atomic_file.hpp).
void write_wav(const std::string& path, const Wav& wav);

// Mono float samples in [-1, 1): channels are averaged, int16 / 32768.
std::vector<float> to_mono_float(const Wav& wav);
// Float samples (clipped to [-1, 1]) to a mono 16-bit WAV, rounding to nearest.
Wav from_float(const std::vector<float>& samples, int sample_rate);

}  // namespace loom::audio
