// The omni-modal model: grouped per-modality encoders (text, image, audio,
// video), projection heads into a shared embedding space with a learnable
// temperature, a fusion module with a matching head, and a text decoder that
// captions, transcribes or answers from any set of encodings.
//
// Sizes come from the recipe's `model` section (OmniConfig::from_json); the
// tokenizer decides vocab_size and the special ids.
#pragma once

#include <nlohmann/json.hpp>

#include "loom/omni/decoder.hpp"
#include "loom/omni/fusion.hpp"

namespace loom::omni {

struct OmniConfig {
  int64_t vocab_size = 0;  // set from the tokenizer
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t mlp_ratio = 2;
  double dropout = 0.0;
  int64_t embed_dim = 64;  // the shared contrastive space
  int64_t text_layers = 2, image_layers = 2, audio_layers = 2, video_layers = 1, fusion_layers = 1,
          decoder_layers = 2;
  int64_t text_len = 24;     // tokens, encoder and decoder
  int64_t image_size = 64, patch = 8;
  std::string image_stem = "patch";  // or "conv" (ImageEncoder)
  int64_t n_mels = 80, mel_frames = 512;
  int64_t video_frames = 8, video_grid = 2;
  std::string fusion = "joint";  // or "cross_attention"
  int64_t classes = 10;  // the image classification head (fine-tuning)
  int64_t prompt_tokens = 0;  // > 0: prompt tuning, virtual tokens before every encoder's tokens
  int64_t pad_id = 0;  // set from the tokenizer
  // Reads the keys above (vocab_size and pad_id excepted) from a recipe's model section.
  static OmniConfig from_json(const nlohmann::json& model);
};

class OmniModel : public nn::Module {
 public:
  explicit OmniModel(const OmniConfig& config, Generator* gen = nullptr);
  // The unit-norm-free projections of pooled encodings into the shared space
  // ([B, embed_dim]; the contrastive loss normalises them).
  Tensor embed(Modality m, const Encoded& e);
  OmniConfig config;
  std::shared_ptr<TextEncoder> text;
  std::shared_ptr<ImageEncoder> image;
  std::shared_ptr<SignalEncoder> audio;
  std::shared_ptr<VideoEncoder> video;
  std::shared_ptr<Fusion> fusion;
  std::shared_ptr<TextDecoder> decoder;
  std::shared_ptr<nn::Linear> proj_text, proj_image, proj_audio, proj_video;
  std::shared_ptr<nn::Linear> match_head;       // fused CLS -> {no match, match}
  std::shared_ptr<nn::Linear> audio_regression;  // audio token -> its 4 input frames x n_mels
  std::shared_ptr<nn::Linear> classifier;        // pooled image encoding -> class logits
  Tensor logit_scale;                            // scalar, see losses.hpp

 private:
  std::string type_name() const override { return "OmniModel"; }
};

}  // namespace loom::omni
