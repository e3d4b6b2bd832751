// A trained omni model ready for inference: loads a run directory written by
// loom-train (config.json, tokenizer.json, the newest checkpoint, or one
// checkpoint directory) and answers embedding, captioning and transcription
// calls with the preprocessing of training. The model runs in eval mode
// without autograd. Not thread-safe: make one call at a time (a server
// serialises or batches requests).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/omni/decoder.hpp"
#include "loom/omni/model.hpp"
#include "loom/omni/vocabulary.hpp"

namespace loom::omni {

class OmniPipeline {
 public:
  // Errors name the file and what is wrong (no config, not an omni run, ...).
  explicit OmniPipeline(const std::string& run_or_checkpoint);

  // Unit-norm embeddings in the shared space, one row per input: [N, embed_dim].
  Tensor embed_texts(const std::vector<std::string>& texts);
  Tensor embed_images(const Tensor& images);  // f32 [N, 3, S, S] in [0, 1], S = config().image_size
  Tensor embed_speech(const std::vector<std::vector<float>>& samples_16k);

  // Generated text in `language` ("en" or "zh").
  std::vector<std::string> caption(const Tensor& images, const std::string& language, const DecodeOptions& o = {});
  std::vector<std::string> transcribe(const std::vector<std::vector<float>>& samples_16k,
                                      const std::string& language, const DecodeOptions& o = {});

  OmniModel& model() { return *model_; }
  const OmniConfig& config() const { return model_->config; }
  const Vocabulary& vocab() const { return *vocab_; }
  const std::string& checkpoint() const { return checkpoint_; }

 private:
  Encoded encode_speech(const std::vector<std::vector<float>>& samples_16k);
  std::vector<std::string> decode(const Encoded& context, const std::string& language, DecodeOptions o);
  std::unique_ptr<Vocabulary> vocab_;
  std::shared_ptr<OmniModel> model_;
  std::string checkpoint_;
};

}  // namespace loom::omni
