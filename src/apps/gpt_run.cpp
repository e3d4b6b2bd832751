// Loading and sampling a GPT run (see gpt_run.hpp).
#include "gpt_run.hpp"

#include <filesystem>

#include "loom/data/text.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/train/recipe.hpp"

namespace fs = std::filesystem;

namespace loom::apps {

namespace {

// True when `bytes` is valid UTF-8, or (unless `complete`) valid UTF-8
// followed by the beginning of one more character that can still be
// completed: a lead byte C2-F4 (C0, C1 and F5-FF never start one), and for
// E0, ED, F0 and F4 a second byte in its narrower range (no overlong forms,
// surrogates or code points above U+10FFFF).
bool valid_utf8_prefix(const std::string& bytes, bool complete) {
  const size_t bad = data::utf8_invalid_offset(bytes);
  if (bad == std::string::npos) return true;
  if (complete) return false;
  const auto lead = static_cast<unsigned char>(bytes[bad]);
  const size_t need = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
  if (need == 0 || bytes.size() - bad >= need) return false;
  for (size_t i = bad + 1; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (i == bad + 1) {
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    if (b < lo || b > hi) return false;
  }
  return true;
}

std::string checked_checkpoint(const std::string& where) {
  const bool is_checkpoint = fs::exists(fs::path(where) / io::kCheckpointManifest);
  if (is_checkpoint) return where;
  const auto list = io::list_checkpoints(where);
  LOOM_CHECK(!list.empty(), "no checkpoints under '", where, "/checkpoints'");
  return list.back();
}

}  // namespace

GptRun::GptRun(const std::string& where) : checkpoint_(checked_checkpoint(where)) {
  const fs::path run = checkpoint_ == where ? fs::path(io::run_of_checkpoint(where)) : fs::path(where);
  const auto config = train::read_recipe((run / "config.json").string());
  LOOM_CHECK(config["model"]["kind"] == "gpt", "'", run.string(), "' is not a GPT run (model.kind ",
             config["model"]["kind"].dump(), ")");
  tokenizer_ = data::BpeTokenizer::load((run / "tokenizer.json").string());
  model_ = std::make_unique<models::GPT>(models::GPTConfig::from_json(config["model"]));
  model_->load_state_dict(io::load_checkpoint(checkpoint_).weights);
}

Continuation GptRun::continue_text(const std::string& prompt, models::SamplingOptions s, uint64_t seed,
                                   const std::optional<models::VerseForm>& verse) {
  s.stop_token = tokenizer_.special_token_id("<|endoftext|>");
  // The text so far, decoded once per sampled token rather than once per candidate.
  std::string text;
  size_t decoded_tokens = 0;
  s.allow = [&](const std::vector<int32_t>& so_far, int32_t id) {
    if (decoded_tokens != so_far.size()) {  // one generate call only appends
      text = tokenizer_.decode(so_far);
      decoded_tokens = so_far.size();
    }
    if (id == s.stop_token) return valid_utf8_prefix(text, true) && (!verse || verse->allows(text, "", true));
    if (id >= tokenizer_.vocab_size() || id > s.stop_token) return false;
    const std::string piece = tokenizer_.token_bytes(id);
    return valid_utf8_prefix(text + piece, false) && (!verse || verse->allows(text, piece, false));
  };
  const auto ids = tokenizer_.encode(prompt);
  LOOM_CHECK(!ids.empty(), "the prompt is empty");
  Generator gen(seed);
  auto out = model_->generate(ids, s, gen);
  if (!out.empty() && out.back() == s.stop_token) out.pop_back();
  const std::vector<int32_t> sampled(out.begin() + static_cast<long>(ids.size()), out.end());
  return {tokenizer_.decode(out), tokenizer_.decode(sampled), static_cast<int64_t>(sampled.size())};
}

}  // namespace loom::apps
