// The tri-modal, bilingual scene dataset: images, captions (English and
// Chinese), speech and short videos, for the omni-modal models.
//
// A scene is a 64x64 RGB canvas with one or two Fashion-MNIST items (the
// train split for training scenes, the test split for evaluation scenes) at
// named positions, each tinted with a named colour; its caption comes from a
// small grammar in both languages ("a red sneaker on the left and a blue bag
// on the right" / "左边是红色的运动鞋，右边是蓝色的包"), with paraphrases.
// A video is 8 frames of one item moving in a named direction. A fixed set of
// colour x class pairs (10%, chosen by the seed) is held out of every
// training scene and video, for compositional zero-shot evaluation.
//
// Everything is a pure function of the seed: scene i of a split draws from
// its own Philox stream, so the output does not depend on threads. Speech
// comes from a Synthesizer the caller supplies (loom-data binds espeak-ng;
// the library does not link it), is resampled to 16 kHz and written as WAV.
// The layout of the output directory is documented in docs/data.md.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "loom/audio/wav.hpp"
#include "loom/data/dataset.hpp"

namespace loom::data::trimodal {

inline constexpr int kSide = 64;          // canvas side
inline constexpr int kVideoFrames = 8;
inline constexpr int kSampleRate = 16000;  // of the stored speech
inline constexpr int kNumClasses = 10;
inline constexpr int kNumColours = 8;
inline constexpr int kNumPositions = 5;

struct Colour {
  const char* en;
  const char* zh;
  std::array<uint8_t, 3> rgb;
};
const std::array<const char*, kNumClasses>& class_names_en();
const std::array<const char*, kNumClasses>& class_names_zh();
const std::array<Colour, kNumColours>& colours();
// left, right, top, bottom, center
const std::array<const char*, kNumPositions>& position_names();

struct Item {
  int cls = 0;
  int colour = 0;
  int position = 0;         // index into position_names()
  int64_t source = 0;       // index of the Fashion-MNIST image in its split
  int dx = 0, dy = 0;       // jitter of the placement, pixels
};

struct Scene {
  std::vector<Item> items;  // one or two
  bool held_out = false;    // some item is a held-out colour x class pair
  std::string en, zh;
  std::vector<std::string> paraphrases_en, paraphrases_zh;
  int rate_en = 175, pitch_en = 50, rate_zh = 175, pitch_zh = 50;  // espeak parameters
  int lead_en = 0, lead_zh = 0;  // leading silence in 16 kHz samples
};

// Directions: right, left, up, down.
inline constexpr int kNumDirections = 4;
const std::array<const char*, kNumDirections>& direction_names();

struct Video {
  Item item;  // item.position unused; the motion is `direction`
  int direction = 0;
  bool held_out = false;
  std::string en, zh;
};

// The held-out pairs (colour, class) for a seed: 10% of the 80, sorted.
std::vector<std::pair<int, int>> held_out_pairs(uint64_t seed);

// The captions of a list of items ("a red sneaker on the left and ...").
std::string caption_en(const std::vector<Item>& items);
std::string caption_zh(const std::vector<Item>& items);
std::vector<std::string> paraphrases_en(const std::vector<Item>& items);
std::vector<std::string> paraphrases_zh(const std::vector<Item>& items);
std::string motion_caption_en(const Item& item, int direction);
std::string motion_caption_zh(const Item& item, int direction);

// Scene `index` of a split (train = true) for `seed`; `class_index` lists,
// per class, the image indices of that class in the split's Fashion-MNIST
// labels (the sources are drawn from them).
using ClassIndex = std::array<std::vector<int64_t>, kNumClasses>;
ClassIndex class_index(const std::vector<uint8_t>& labels);
Scene make_scene(uint64_t seed, bool train, int64_t index, const ClassIndex& classes);
Video make_video(uint64_t seed, bool train, int64_t index, const ClassIndex& classes);

// Renders into `rgb` (u8 [64, 64, 3], zeroed by the caller); `images` is the
// split's u8 [N, 28, 28] Fashion-MNIST images. Items are drawn as
// colour * intensity / 255, overlapping pixels take the maximum.
void render_scene(const Scene& scene, const uint8_t* images, uint8_t* rgb);
// `frames` is u8 [8, 64, 64, 3].
void render_video(const Video& video, const uint8_t* images, uint8_t* frames);

// --- building ---------------------------------------------------------------

struct SpeechRequest {
  std::string text;
  std::string voice;  // "en" or "cmn"
  int rate = 175;     // words per minute
  int pitch = 50;     // 0..100
};
// Returns speech at any sample rate (resampled to 16 kHz by the builder).
// Called from one thread only.
using Synthesizer = std::function<audio::Wav(const SpeechRequest&)>;

struct BuildOptions {
  std::string out;
  int64_t train_scenes = 4000;
  int64_t eval_scenes = 1000;
  int64_t train_videos = 1000;
  int64_t eval_videos = 250;
  uint64_t seed = 0;
  std::string fashion_dir = "/usr/share/datasets/fashion-mnist";
  bool progress = true;  // a progress line on stderr
};
// Writes the dataset to options.out, built in out.tmp-<pid> and renamed into
// place when complete (loom/io/atomic_file.hpp AtomicDir).
void build(const BuildOptions& options, const Synthesizer& synthesize);

// --- reading ----------------------------------------------------------------

struct ReaderOptions {
  std::string language = "en";  // which speech: "en" or "zh"
  int64_t mel_frames = 512;     // log-mel padded (with log(1e-6)) or cropped to this many 10 ms frames
};

// One split of a built dataset. Example i is
//   {image f32 [3, 64, 64] in [0, 1], log-mel f32 [mel_frames, 80],
//    classes i64 [2], colours i64 [2], positions i64 [2], held_out i64 []}
// where the second item's entries are -1 in one-item scenes. The log-mel is
// computed on each get() from the WAV file (loom/audio/mel.hpp defaults).
class TrimodalDataset : public Dataset {
 public:
  TrimodalDataset(const std::string& root, const std::string& split, ReaderOptions options = {});
  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  Example get(int64_t index) const override;

  struct Record {
    std::string en, zh, audio_en, audio_zh;  // audio paths absolute
    std::vector<Item> items;
    bool held_out = false;
  };
  const std::vector<Record>& records() const { return records_; }
  const Tensor& images() const { return images_; }  // u8 [N, 64, 64, 3]

 private:
  ReaderOptions options_;
  Tensor images_;
  std::vector<Record> records_;
};

}  // namespace loom::data::trimodal
