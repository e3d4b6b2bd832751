// The built-in sample picture and recording that the web page's demo
// (GET /?demo=1) sends through the API: the first evaluation scene of the
// run's dataset (its picture and English speech) when there is one, else a
// synthetic picture (two coloured blocks on black) and a one-second tone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/data/trimodal.hpp"

namespace loom::serve {

struct DemoSamples {
  std::vector<uint8_t> png;  // side x side RGB
  std::vector<uint8_t> wav;  // 16 kHz mono 16-bit PCM
  std::string source;        // where they come from
};

// `scenes` may be null.
DemoSamples make_demo_samples(const data::trimodal::TrimodalDataset* scenes, int64_t side);

}  // namespace loom::serve
