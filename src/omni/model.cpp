#include "loom/omni/model.hpp"

#include "loom/omni/losses.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

OmniConfig OmniConfig::from_json(const nlohmann::json& m) {
  OmniConfig c;
  auto take = [&](const char* key, auto& field) {
    if (m.contains(key)) field = m.at(key).get<std::decay_t<decltype(field)>>();
  };
  take("d_model", c.d_model);
  take("n_heads", c.n_heads);
  take("mlp_ratio", c.mlp_ratio);
  take("dropout", c.dropout);
  take("embed_dim", c.embed_dim);
  take("text_layers", c.text_layers);
  take("image_layers", c.image_layers);
  take("audio_layers", c.audio_layers);
  take("video_layers", c.video_layers);
  take("fusion_layers", c.fusion_layers);
  take("decoder_layers", c.decoder_layers);
  take("text_len", c.text_len);
  take("image_size", c.image_size);
  take("patch", c.patch);
  take("image_stem", c.image_stem);
  take("n_mels", c.n_mels);
  take("mel_frames", c.mel_frames);
  take("video_frames", c.video_frames);
  take("video_grid", c.video_grid);
  take("fusion", c.fusion);
  take("classes", c.classes);
  take("prompt_tokens", c.prompt_tokens);
  return c;
}

OmniModel::OmniModel(const OmniConfig& c, Generator* gen) : config(c) {
  LOOM_CHECK(c.vocab_size > 0, "OmniModel: vocab_size must be set (from the tokenizer)");
  auto stack = [&](int64_t layers) {
    StackOptions s;
    s.dim = c.d_model;
    s.layers = layers;
    s.heads = c.n_heads;
    s.mlp_ratio = c.mlp_ratio;
    s.dropout = c.dropout;
    return s;
  };
  text = register_module("text", std::make_shared<TextEncoder>(c.vocab_size, c.text_len, c.pad_id,
                                                               stack(c.text_layers), gen));
  LOOM_CHECK(c.image_stem == "patch" || c.image_stem == "conv", "OmniModel: image_stem '", c.image_stem,
             "' is not one of patch, conv");
  image = register_module("image", std::make_shared<ImageEncoder>(c.image_size, c.patch, stack(c.image_layers), gen,
                                                                  c.image_stem == "conv"));
  audio = register_module("audio", std::make_shared<SignalEncoder>(Modality::audio, c.n_mels, c.mel_frames,
                                                                   stack(c.audio_layers), gen));
  video = register_module("video", std::make_shared<VideoEncoder>(image, c.video_frames, c.video_grid,
                                                                  stack(c.video_layers), gen));
  fusion = register_module("fusion", std::make_shared<Fusion>(fusion_kind_from_string(c.fusion),
                                                              stack(c.fusion_layers), gen));
  decoder = register_module("decoder", std::make_shared<TextDecoder>(c.vocab_size, c.text_len + 1,
                                                                     stack(c.decoder_layers), gen));
  auto proj = [&](const char* name) {
    return register_module(name, std::make_shared<nn::Linear>(c.d_model, c.embed_dim, false, gen));
  };
  proj_text = proj("proj_text");
  proj_image = proj("proj_image");
  proj_audio = proj("proj_audio");
  proj_video = proj("proj_video");
  match_head = register_module("match_head", std::make_shared<nn::Linear>(c.d_model, 2, true, gen));
  audio_regression =
      register_module("audio_regression", std::make_shared<nn::Linear>(c.d_model, 4 * c.n_mels, true, gen));
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c.d_model, c.classes, true, gen));
  logit_scale = register_parameter("logit_scale", full({}, kInitLogitScale));
  // last, so that a model with prompts draws every other weight as one without
  if (c.prompt_tokens > 0)
    for (Encoder* e : std::vector<Encoder*>{text.get(), image.get(), audio.get(), video.get()})
      e->add_prompt(c.prompt_tokens, gen);
}

Tensor OmniModel::embed(Modality m, const Encoded& e) {
  switch (m) {
    case Modality::text: return proj_text->forward(e.pooled);
    case Modality::image: return proj_image->forward(e.pooled);
    case Modality::audio: return proj_audio->forward(e.pooled);
    case Modality::video: return proj_video->forward(e.pooled);
    case Modality::signal: break;
  }
  LOOM_FAIL("OmniModel::embed: no projection for modality ", modality_name(m));
}

}  // namespace loom::omni
