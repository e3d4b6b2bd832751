#include "train/tasks/omni_data.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "loom/audio/mel.hpp"
#include "loom/omni/features.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/ops/ops.hpp"

namespace loom::train::omni_task {

namespace tm = data::trimodal;

int64_t text_key(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

OmniScenes::OmniScenes(const std::string& root, const std::string& split, int64_t mel_frames, int64_t limit,
                       int64_t speech_cache_mb, SpeechInput speech_input)
    : base_(root, split), mel_frames_(mel_frames), speech_input_(speech_input) {
  LOOM_CHECK(speech_cache_mb >= 0, "recipe: data.speech_cache_mb must not be negative, got ", speech_cache_mb);
  speech_cache_ = std::make_unique<data::TensorCache>(speech_cache_mb << 20);
  scenes_ = limit > 0 ? std::min(limit, base_.size()) : base_.size();
  const std::string dir = root + "/" + split;
  for (auto& [name, t] : io::load_safetensors(dir + "/video.safetensors"))
    if (name == "video") video_u8_ = t;
  LOOM_CHECK(video_u8_.defined() && video_u8_.dtype() == DType::u8 && video_u8_.dim() == 5 &&
                 video_u8_.size(1) == tm::kVideoFrames,
             "omni: ", dir, "/video.safetensors must hold 'video' u8 [V, 8, 64, 64, 3]");
  std::ifstream in(dir + "/video_captions.jsonl");
  LOOM_CHECK(in, "omni: cannot open ", dir, "/video_captions.jsonl");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::string where = dir + "/video_captions.jsonl line " + std::to_string(++n);
    try {
      const auto j = nlohmann::json::parse(line);
      VideoRecord r;
      r.en = j.at("en");
      r.zh = j.at("zh");
      r.cls = j.at("item").at("class");
      r.colour = j.at("item").at("colour");
      r.direction = static_cast<int>(std::find(tm::direction_names().begin(), tm::direction_names().end(),
                                               j.at("direction").get<std::string>()) -
                                     tm::direction_names().begin());
      LOOM_CHECK(r.direction < tm::kNumDirections, "omni: ", where, ": unknown direction");
      r.held_out = j.at("held_out");
      videos_.push_back(r);
    } catch (const nlohmann::json::exception& e) {
      LOOM_FAIL("omni: ", where, ": ", e.what());
    }
  }
  LOOM_CHECK(static_cast<int64_t>(videos_.size()) == video_u8_.size(0) && !videos_.empty(), "omni: ", dir, " has ",
             videos_.size(), " video captions for ", video_u8_.size(0), " videos");
  if (limit > 0 && static_cast<int64_t>(videos_.size()) > limit) videos_.resize(limit);
}

Tensor OmniScenes::image(int64_t index) const {
  return omni::image_from_rgb8(base_.images().select(0, index).contiguous().data<uint8_t>(), tm::kSide, tm::kSide);
}

Tensor OmniScenes::video(int64_t index) const {
  const Tensor v = video_u8_.select(0, index).contiguous();
  std::vector<Tensor> frames;
  const int64_t frame_bytes = tm::kSide * tm::kSide * 3;
  for (int64_t f = 0; f < tm::kVideoFrames; ++f)
    frames.push_back(omni::image_from_rgb8(v.data<uint8_t>() + f * frame_bytes, tm::kSide, tm::kSide));
  return stack(frames, 0);
}

// A scene's speech, the same bits as reading it afresh: the cache keeps the
// real part (the frames of the features, or the samples), the padding is
// zeros.
Tensor OmniScenes::speech(int64_t index, bool zh, Tensor* valid) const {
  const bool samples = speech_input_ == SpeechInput::samples;
  const int64_t key = 2 * index + (zh ? 1 : 0);
  const int64_t length = samples ? omni::speech_span(mel_frames_) : mel_frames_;
  const auto hit = speech_cache_->find(key);
  if (!hit) {
    const auto& r = base_.records()[index];
    const std::string& wav = zh ? r.audio_zh : r.audio_en;
    const Tensor full = samples ? omni::speech_samples_from_wav(wav, mel_frames_, valid)
                                : omni::speech_features_from_wav(wav, mel_frames_, valid);
    const int64_t frames = std::count(valid->data<bool>(), valid->data<bool>() + valid->numel(), true);
    // the samples' real part: up to the end of the last real frame (the rest is zeros)
    const int64_t real = samples ? std::min(length, omni::speech_span(frames)) : frames;
    speech_cache_->insert(key, full.narrow(0, 0, real));  // refused when over the budget (or it is 0)
    return full;
  }
  const Tensor& part = *hit;
  Shape shape = part.shape();
  shape[0] = length;
  Tensor out = zeros(shape, DType::f32);
  std::copy(part.data<float>(), part.data<float>() + part.numel(), out.data<float>());
  *valid = omni::speech_valid_frames(mel_frames_, samples ? audio::mel_frame_count(part.size(0)) : part.size(0));
  return out;
}

Tensor OmniScenes::speech_features(const Tensor& speech, const Tensor& valid, Device device) const {
  if (speech_input_ == SpeechInput::features) return speech.to(device);
  return omni::speech_features(speech.to(device), valid);
}

data::Example OmniScenes::get(int64_t index) const {
  LOOM_CHECK(index >= 0 && index < scenes_, "omni: scene ", index, " out of range for ", scenes_, " scenes");
  Tensor valid_en, valid_zh;
  Tensor mel_en = speech(index, false, &valid_en);
  Tensor mel_zh = speech(index, true, &valid_zh);
  const int64_t v = index % static_cast<int64_t>(videos_.size());
  return {image(index), mel_en, valid_en, mel_zh, valid_zh, scalar_tensor(static_cast<double>(index), DType::i64),
          video(v), scalar_tensor(static_cast<double>(v), DType::i64)};
}

}  // namespace loom::train::omni_task
