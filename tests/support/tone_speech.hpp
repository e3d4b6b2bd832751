// A stand-in for espeak-ng in tests that build a tri-modal dataset: a tone per
// utterance, its pitch following the text and the voice, its length the text
// (so equal captions sound equal and different ones differ).
#pragma once

#include <cmath>
#include <functional>
#include <string>

#include <loom/audio/wav.hpp>
#include <loom/data/trimodal.hpp>

namespace loom::testing {

inline audio::Wav tone_speech(const data::trimodal::SpeechRequest& r) {
  audio::Wav w;
  w.sample_rate = 16000;
  const size_t n = 800 + 120 * r.text.size();
  const double f = 200.0 + static_cast<double>(std::hash<std::string>{}(r.text) % 400) + r.pitch;
  for (size_t i = 0; i < n; ++i)
    w.samples.push_back(static_cast<int16_t>(8000 * std::sin(2 * M_PI * f * static_cast<double>(i) / 16000.0)));
  return w;
}

}  // namespace loom::testing
