// TrimodalDataset: reads one split of a built tri-modal dataset (see
// loom/data/trimodal.hpp and docs/data.md).
#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "loom/audio/mel.hpp"
#include "loom/core/error.hpp"
#include "loom/data/trimodal.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/ops/creation.hpp"

namespace loom::data::trimodal {

namespace {

int index_of(const auto& names, const std::string& name, const std::string& what, const std::string& where) {
  for (size_t i = 0; i < names.size(); ++i)
    if (name == names[i]) return static_cast<int>(i);
  LOOM_FAIL("TrimodalDataset: ", where, ": unknown ", what, " '", name, "'");
}

}  // namespace

TrimodalDataset::TrimodalDataset(const std::string& root, const std::string& split, ReaderOptions options)
    : options_(std::move(options)) {
  LOOM_CHECK(split == "train" || split == "eval", "TrimodalDataset: split is '", split, "', expected train or eval");
  LOOM_CHECK(options_.language == "en" || options_.language == "zh", "TrimodalDataset: language is '",
             options_.language, "', expected en or zh");
  LOOM_CHECK(options_.mel_frames >= 1, "TrimodalDataset: mel_frames is ", options_.mel_frames, ", expected >= 1");
  const std::string dir = root + "/" + split;
  const std::string images_path = dir + "/images.safetensors";
  for (auto& [name, t] : io::load_safetensors(images_path))
    if (name == "images") images_ = t;
  LOOM_CHECK(images_.defined(), "TrimodalDataset: ", images_path, " has no tensor 'images'");
  LOOM_CHECK(images_.dtype() == DType::u8 && images_.dim() == 4 && images_.size(1) == kSide &&
                 images_.size(2) == kSide && images_.size(3) == 3,
             "TrimodalDataset: ", images_path, ": 'images' must be u8 [N, 64, 64, 3], got ", dtype_name(images_.dtype()),
             " ", shape_str(images_.shape()));

  const std::string captions_path = dir + "/captions.jsonl";
  std::ifstream in(captions_path);
  LOOM_CHECK(in.good(), "TrimodalDataset: cannot open ", captions_path);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const std::string where = captions_path + " line " + std::to_string(n);
    try {
      const auto j = nlohmann::json::parse(line);
      Record r;
      r.en = j.at("en").get<std::string>();
      r.zh = j.at("zh").get<std::string>();
      r.audio_en = dir + "/" + j.at("audio").at("en").get<std::string>();
      r.audio_zh = dir + "/" + j.at("audio").at("zh").get<std::string>();
      r.held_out = j.at("held_out").get<bool>();
      for (const auto& it : j.at("items")) {
        Item item;
        item.cls = it.at("class").get<int>();
        item.colour = it.at("colour").get<int>();
        item.position = index_of(position_names(), it.at("position").get<std::string>(), "position", where);
        item.source = it.at("source_index").get<int64_t>();
        LOOM_CHECK(item.cls >= 0 && item.cls < kNumClasses && item.colour >= 0 && item.colour < kNumColours,
                   "TrimodalDataset: ", where, ": class ", item.cls, " or colour ", item.colour, " out of range");
        r.items.push_back(item);
      }
      LOOM_CHECK(r.items.size() == 1 || r.items.size() == 2, "TrimodalDataset: ", where, ": ", r.items.size(),
                 " items, expected 1 or 2");
      LOOM_CHECK(j.at("id").get<int64_t>() == static_cast<int64_t>(records_.size()), "TrimodalDataset: ", where,
                 ": id ", j.at("id").get<int64_t>(), ", expected ", records_.size());
      records_.push_back(std::move(r));
    } catch (const nlohmann::json::exception& e) {
      LOOM_FAIL("TrimodalDataset: ", where, ": ", e.what());
    }
  }
  LOOM_CHECK(static_cast<int64_t>(records_.size()) == images_.size(0), "TrimodalDataset: ", captions_path, " has ",
             records_.size(), " scenes but ", images_path, " has ", images_.size(0), " images");
}

Example TrimodalDataset::get(int64_t index) const {
  LOOM_CHECK(index >= 0 && index < size(), "TrimodalDataset::get: index ", index, " is out of range for ", size(),
             " examples");
  const Record& r = records_[index];
  Tensor image = empty({3, kSide, kSide}, DType::f32);
  const uint8_t* src = images_.select(0, index).contiguous().data<uint8_t>();
  float* dst = image.data<float>();
  for (int p = 0; p < kSide * kSide; ++p)
    for (int c = 0; c < 3; ++c) dst[c * kSide * kSide + p] = src[p * 3 + c] / 255.0f;

  const std::string& wav_path = options_.language == "en" ? r.audio_en : r.audio_zh;
  const audio::Wav wav = audio::read_wav(wav_path);
  LOOM_CHECK(wav.sample_rate == kSampleRate, "TrimodalDataset: ", wav_path, " has sample rate ", wav.sample_rate,
             ", expected ", kSampleRate);
  const audio::MelOptions mo;
  const Tensor mel = audio::log_mel_spectrogram(audio::to_mono_float(wav), mo);
  Tensor fixed = full({options_.mel_frames, mo.n_mels}, std::log(mo.log_floor), DType::f32);
  const int64_t keep = std::min(options_.mel_frames, mel.size(0));
  std::copy(mel.data<float>(), mel.data<float>() + keep * mo.n_mels, fixed.data<float>());

  std::vector<int64_t> cls(2, -1), colour(2, -1), position(2, -1);
  for (size_t k = 0; k < r.items.size(); ++k) {
    cls[k] = r.items[k].cls;
    colour[k] = r.items[k].colour;
    position[k] = r.items[k].position;
  }
  return {image, fixed, from_vector(cls, {2}), from_vector(colour, {2}), from_vector(position, {2}),
          scalar_tensor(r.held_out ? 1 : 0, DType::i64)};
}

}  // namespace loom::data::trimodal
