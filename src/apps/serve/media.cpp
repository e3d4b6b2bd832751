// PNG and WAV bytes to model inputs (see media.hpp).
#include "media.hpp"

#include "api_error.hpp"
#include "loom/audio/resample.hpp"
#include "loom/audio/wav.hpp"
#include "loom/core/error.hpp"
#include "loom/io/png.hpp"
#include "loom/omni/features.hpp"

namespace loom::serve {

Tensor image_from_png(const std::vector<uint8_t>& png, int64_t side, const std::string& field) {
  Tensor pixels;
  try {
    pixels = io::decode_png(png.data(), png.size(), field);
  } catch (const Error& e) {
    throw bad_request(e.what());
  }
  const int64_t h = pixels.size(0), w = pixels.size(1), channels = pixels.size(2);
  if (h != side || w != side)
    throw bad_request(field + ": the picture is " + std::to_string(w) + "x" + std::to_string(h) +
                      " pixels; images must be " + std::to_string(side) + "x" + std::to_string(side) + " RGB PNGs");
  // gray (1), gray + alpha (2), RGB (3), RGBA (4) -> RGB over black
  const bool alpha = channels == 2 || channels == 4;
  const int64_t colours = alpha ? channels - 1 : channels;
  const uint8_t* in = pixels.data<uint8_t>();
  std::vector<uint8_t> rgb(static_cast<size_t>(h * w * 3));
  for (int64_t p = 0; p < h * w; ++p) {
    const uint8_t* px = in + p * channels;
    const int a = alpha ? px[channels - 1] : 255;
    for (int c = 0; c < 3; ++c) {
      const int v = px[colours == 3 ? c : 0];
      rgb[static_cast<size_t>(p * 3 + c)] = static_cast<uint8_t>((v * a + 127) / 255);
    }
  }
  return omni::image_from_rgb8(rgb.data(), h, w);
}

std::vector<float> speech_from_wav(const std::vector<uint8_t>& wav, const std::string& field) {
  audio::Wav parsed;
  try {
    parsed = audio::parse_wav(wav.data(), wav.size(), field);
  } catch (const Error& e) {
    // "read_wav: FIELD: what" -> "FIELD: what"
    std::string message = e.what();
    if (message.rfind("read_wav: ", 0) == 0) message.erase(0, 10);
    throw bad_request(message);
  }
  if (parsed.frames() == 0) throw bad_request(field + ": the WAV file has no samples");
  auto samples = audio::to_mono_float(parsed);
  if (parsed.sample_rate != 16000) samples = audio::resample(samples, parsed.sample_rate, 16000);
  return samples;
}

}  // namespace loom::serve
