// The demo samples (see samples.hpp).
#include "samples.hpp"

#include <cmath>
#include <fstream>
#include <iterator>

#include "loom/audio/wav.hpp"
#include "loom/io/png.hpp"

namespace loom::serve {

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Tensor synthetic_picture(int64_t side) {
  Tensor rgb = empty({side, side, 3}, DType::u8);
  uint8_t* p = rgb.data<uint8_t>();
  for (int64_t y = 0; y < side; ++y)
    for (int64_t x = 0; x < side; ++x) {
      const bool left = x >= side / 8 && x < side * 3 / 8 && y >= side / 3 && y < side * 2 / 3;
      const bool right = x >= side * 5 / 8 && x < side * 7 / 8 && y >= side / 3 && y < side * 2 / 3;
      uint8_t* px = p + (y * side + x) * 3;
      px[0] = left ? 220 : 0;
      px[1] = 0;
      px[2] = right ? 220 : 0;
    }
  return rgb;
}

std::vector<uint8_t> tone_wav() {
  std::vector<float> samples(16000);
  for (size_t i = 0; i < samples.size(); ++i)
    samples[i] = 0.3f * static_cast<float>(std::sin(2 * M_PI * 440.0 * static_cast<double>(i) / 16000.0));
  const std::string bytes = audio::encode_wav(audio::from_float(samples, 16000));
  return {bytes.begin(), bytes.end()};
}

}  // namespace

DemoSamples make_demo_samples(const data::trimodal::TrimodalDataset* scenes, int64_t side) {
  DemoSamples s;
  if (scenes && scenes->size() > 0 && side == data::trimodal::kSide) {
    s.png = io::encode_png(scenes->images().select(0, 0).contiguous());
    s.wav = read_bytes(scenes->records()[0].audio_en);
    if (!s.wav.empty()) {
      s.source = "the first evaluation scene of the run's dataset";
      return s;
    }
  }
  s.png = io::encode_png(synthetic_picture(side));
  s.wav = tone_wav();
  s.source = "synthetic (no dataset found)";
  return s;
}

}  // namespace loom::serve
