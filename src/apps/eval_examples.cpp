#include "eval_examples.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "loom/audio/mel.hpp"
#include "loom/audio/wav.hpp"
#include "loom/data/trimodal.hpp"
#include "loom/io/png.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/ops/creation.hpp"

namespace fs = std::filesystem;

namespace loom::apps {

namespace {

namespace tm = data::trimodal;
constexpr int64_t kGap = 4, kScale = 2;

// Copies an HWC u8 tile (scaled by kScale) into canvas [H, W, 3] at (top, left).
void blit(Tensor& canvas, const uint8_t* tile, int64_t h, int64_t w, int64_t top, int64_t left, int64_t scale) {
  uint8_t* c = canvas.data<uint8_t>();
  const int64_t cw = canvas.size(1);
  for (int64_t y = 0; y < h * scale; ++y)
    for (int64_t x = 0; x < w * scale; ++x)
      for (int ch = 0; ch < 3; ++ch)
        c[((top + y) * cw + left + x) * 3 + ch] = tile[((y / scale) * w + x / scale) * 3 + ch];
}

// A log-mel spectrogram as an RGB tile: time to the right, low bands at the bottom.
std::vector<uint8_t> spectrogram_tile(const std::string& wav_path, int64_t frames) {
  const Tensor mel = audio::log_mel_spectrogram(audio::to_mono_float(audio::read_wav(wav_path)));
  const int64_t t = std::min(frames, mel.size(0)), bands = mel.size(1);
  float lo = 1e30f, hi = -1e30f;
  for (int64_t i = 0; i < t * bands; ++i) {
    lo = std::min(lo, mel.data<float>()[i]);
    hi = std::max(hi, mel.data<float>()[i]);
  }
  std::vector<uint8_t> tile(static_cast<size_t>(bands * frames * 3), 0);
  for (int64_t x = 0; x < t; ++x)
    for (int64_t b = 0; b < bands; ++b) {
      const float v = (mel.data<float>()[x * bands + b] - lo) / std::max(1e-6f, hi - lo);
      const auto g = static_cast<uint8_t>(255.0f * v);
      for (int ch = 0; ch < 3; ++ch) tile[((bands - 1 - b) * frames + x) * 3 + ch] = g;
    }
  return tile;
}

std::string cell(const nlohmann::json& row, const char* key) {
  return row.contains(key) ? row[key].get<std::string>() : std::string("-");
}

}  // namespace

void write_eval_examples(const nlohmann::json& config, const nlohmann::json& eval, const std::string& dir) {
  LOOM_CHECK(eval.contains("examples"), "--examples: this evaluation has no examples (an omni model's has)");
  const std::string root = config.at("data").at("root");
  fs::create_directories(dir);
  const auto& scenes = eval["examples"]["scenes"];
  const auto& videos = eval["examples"]["videos"];
  tm::TrimodalDataset data(root, "eval");
  const int64_t side = tm::kSide * kScale, n = static_cast<int64_t>(scenes.size());

  if (n > 0) {
    Tensor canvas = zeros({side, n * (side + kGap) - kGap, 3}, DType::u8);
    for (int64_t i = 0; i < n; ++i)
      blit(canvas, data.images().select(0, i).contiguous().data<uint8_t>(), tm::kSide, tm::kSide, 0,
           i * (side + kGap), kScale);
    io::write_png(dir + "/scenes.png", canvas);

    const int64_t frames = 512, bands = 80;
    Tensor speech = zeros({n * (bands + kGap) - kGap, frames, 3}, DType::u8);
    for (int64_t i = 0; i < n; ++i) {
      const auto tile = spectrogram_tile(data.records()[i].audio_en, frames);
      blit(speech, tile.data(), bands, frames, i * (bands + kGap), 0, 1);
    }
    io::write_png(dir + "/speech.png", speech);
  }
  const int64_t v = static_cast<int64_t>(videos.size());
  if (v > 0) {
    Tensor clips;
    for (auto& [name, t] : io::load_safetensors(root + "/eval/video.safetensors"))
      if (name == "video") clips = t;
    LOOM_CHECK(clips.defined(), "--examples: ", root, "/eval/video.safetensors has no 'video'");
    Tensor canvas = zeros({v * (tm::kSide + kGap) - kGap, tm::kVideoFrames * (tm::kSide + kGap) - kGap, 3}, DType::u8);
    for (int64_t i = 0; i < v; ++i)
      for (int64_t f = 0; f < tm::kVideoFrames; ++f)
        blit(canvas, clips.select(0, i).select(0, f).contiguous().data<uint8_t>(), tm::kSide, tm::kSide,
             i * (tm::kSide + kGap), f * (tm::kSide + kGap), 1);
    io::write_png(dir + "/video.png", canvas);
  }

  std::ofstream md(dir + "/examples.md");
  md << "Scenes (left to right in scenes.png; their English speech top to bottom in speech.png):\n\n"
     << "| # | reference | generated caption | transcript of the speech | nearest caption |\n|---|---|---|---|---|\n";
  for (const auto& row : scenes)
    for (const char* lang : {"en", "zh"}) {
      const std::string l(lang);
      md << "| " << row["index"].get<int64_t>() << " " << l << " | " << cell(row, ("reference_" + l).c_str()) << " | "
         << cell(row, ("caption_" + l).c_str()) << " | " << cell(row, ("transcript_" + l).c_str()) << " | "
         << cell(row, ("retrieved_" + l).c_str()) << " |\n";
    }
  md << "\nVideos (top to bottom in video.png, 8 frames each):\n\n| # | reference | generated caption |\n|---|---|---|\n";
  for (const auto& row : videos)
    for (const char* lang : {"en", "zh"}) {
      const std::string l(lang);
      md << "| " << row["index"].get<int64_t>() << " " << l << " | " << cell(row, ("reference_" + l).c_str()) << " | "
         << cell(row, ("caption_" + l).c_str()) << " |\n";
    }
}

}  // namespace loom::apps
