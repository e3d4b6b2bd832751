// The data side of the omni task (internal): scenes and videos of a built
// tri-modal dataset as loader examples, and the caption tokenizer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/omni/vocabulary.hpp"
#include "loom/data/tensor_cache.hpp"
#include "loom/data/trimodal.hpp"

namespace loom::train::omni_task {

using omni::Vocabulary;

struct VideoRecord {
  std::string en, zh;
  int cls = 0, colour = 0, direction = 0;
  bool held_out = false;
};

// Where the speech features are computed (recipe data.speech_features): in
// the loader on the host, or from the samples on the model's device.
enum class SpeechInput { features, samples };

// One split of a built dataset. Example i is
//   0 image f32 [3, 64, 64] in [0, 1]
//   1 English speech, log-mel f32 [mel_frames, 80] normalised per utterance
//     and mel channel over its frames (zero in the padding); with
//     SpeechInput::samples its samples f32 [speech_span(mel_frames)] instead
//     (omni::speech_features(samples, valid) turns a batch into features),
//   2 its valid frames bool [mel_frames],
//   3, 4 the same for the Chinese speech,
//   5 the scene index i64 [],
//   6 video i % V f32 [8, 3, 64, 64], 7 its index i64 [].
// `limit` > 0 keeps the first `limit` scenes (and videos). The speech
// (features, or samples) of up to `speech_cache_mb` MiB is kept after its
// first read (the real frames or samples only; 0 reads it afresh each time).
class OmniScenes : public data::Dataset {
 public:
  OmniScenes(const std::string& root, const std::string& split, int64_t mel_frames, int64_t limit,
             int64_t speech_cache_mb = 0, SpeechInput speech_input = SpeechInput::features);
  int64_t size() const override { return scenes_; }
  data::Example get(int64_t index) const override;
  const data::trimodal::TrimodalDataset& scenes() const { return base_; }
  const std::vector<VideoRecord>& videos() const { return videos_; }
  Tensor video(int64_t index) const;  // f32 [8, 3, 64, 64]
  Tensor image(int64_t index) const;  // f32 [3, 64, 64]
  // Scene `index`'s speech in English or Chinese (example item 1 or 3) and
  // its valid frames (item 2 or 4).
  Tensor speech(int64_t index, bool zh, Tensor* valid) const;
  // The audio encoder's input features on `device` from a batch of stacked
  // speech items and their valid frames (already on `device`): the features
  // moved there, or computed there from the samples.
  Tensor speech_features(const Tensor& speech, const Tensor& valid, Device device) const;

 private:
  data::trimodal::TrimodalDataset base_;
  int64_t mel_frames_, scenes_;
  SpeechInput speech_input_;
  std::unique_ptr<data::TensorCache> speech_cache_;
  Tensor video_u8_;  // [V, 8, 64, 64, 3]
  std::vector<VideoRecord> videos_;
};

// A stable 63-bit key for a string (FNV-1a), the identity of a caption.
int64_t text_key(const std::string& text);

}  // namespace loom::train::omni_task
