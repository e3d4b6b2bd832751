#include "loom/omni/pipeline.hpp"

#include <filesystem>
#include <fstream>

#include "loom/autograd/grad_mode.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/nn/lora.hpp"
#include "loom/omni/features.hpp"
#include "loom/omni/losses.hpp"
#include "loom/ops/ops.hpp"

namespace fs = std::filesystem;

namespace loom::omni {

OmniPipeline::OmniPipeline(const std::string& path) {
  checkpoint_ = io::find_checkpoint(path, "omni pipeline");
  const fs::path run = io::run_of_checkpoint(checkpoint_);
  const fs::path config_path = run / "config.json", tokenizer_path = run / "tokenizer.json";
  std::ifstream in(config_path);
  LOOM_CHECK(in, "omni pipeline: cannot read ", config_path.string());
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    LOOM_FAIL("omni pipeline: ", config_path.string(), ": ", e.what());
  }
  const std::string kind = config.value("model", nlohmann::json::object()).value("kind", "");
  LOOM_CHECK(kind == "omni" || kind == "omni_classify", "omni pipeline: ", config_path.string(),
             " is a '", kind, "' run, not an omni model");
  LOOM_CHECK(fs::exists(tokenizer_path), "omni pipeline: ", tokenizer_path.string(), " is missing");
  vocab_ = std::make_unique<Vocabulary>(data::BpeTokenizer::load(tokenizer_path.string()));
  OmniConfig c = OmniConfig::from_json(config["model"]);
  c.vocab_size = vocab_->bpe.vocab_size();
  c.pad_id = vocab_->pad;
  model_ = std::make_shared<OmniModel>(c);
  nn::load_base_state_dict(*model_, io::load_checkpoint(checkpoint_).weights);
  model_->eval();
}

Tensor OmniPipeline::embed_texts(const std::vector<std::string>& texts) {
  NoGradGuard no_grad;
  return unit_rows(model_->embed(Modality::text, model_->text->encode(vocab_->batch(texts, config().text_len))));
}

Tensor OmniPipeline::embed_images(const Tensor& images) {
  NoGradGuard no_grad;
  return unit_rows(model_->embed(Modality::image, model_->image->encode(images)));
}

Encoded OmniPipeline::encode_speech(const std::vector<std::vector<float>>& samples) {
  LOOM_CHECK(!samples.empty(), "omni pipeline: no speech given");
  std::vector<Tensor> mels, valid;
  for (const auto& s : samples) {
    Tensor v;
    mels.push_back(speech_features(s, config().mel_frames, &v));
    valid.push_back(v);
  }
  return model_->audio->encode(stack(mels, 0), stack(valid, 0));
}

Tensor OmniPipeline::embed_speech(const std::vector<std::vector<float>>& samples) {
  NoGradGuard no_grad;
  return unit_rows(model_->embed(Modality::audio, encode_speech(samples)));
}

std::vector<std::string> OmniPipeline::decode(const Encoded& context, const std::string& language,
                                              DecodeOptions o) {
  if (o.max_tokens <= 0 || o.max_tokens >= config().text_len) o.max_tokens = config().text_len - 1;
  const std::vector<int32_t> start(context.tokens.size(0), vocab_->start_token(language));
  std::vector<std::string> out;
  for (const auto& ids : model_->decoder->generate(context, start, vocab_->eos, o)) out.push_back(vocab_->decode(ids));
  return out;
}

std::vector<std::string> OmniPipeline::caption(const Tensor& images, const std::string& language,
                                               const DecodeOptions& o) {
  NoGradGuard no_grad;
  return decode(model_->image->encode(images), language, o);
}

std::vector<std::string> OmniPipeline::transcribe(const std::vector<std::vector<float>>& samples,
                                                  const std::string& language, const DecodeOptions& o) {
  NoGradGuard no_grad;
  return decode(encode_speech(samples), language, o);
}

}  // namespace loom::omni
