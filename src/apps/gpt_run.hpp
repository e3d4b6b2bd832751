// A trained GPT run loaded for sampling: what loom-generate prints and what
// loom-serve's /v1/generate answers. Loads RUN/config.json,
// RUN/tokenizer.json and the newest checkpoint (or the checkpoint directory
// given), and samples only tokens that keep the text valid UTF-8 (byte-level
// tokens can split a character), stopping at <|endoftext|>.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "loom/data/bpe.hpp"
#include "loom/models/gpt.hpp"
#include "loom/models/verse.hpp"

namespace loom::apps {

struct Continuation {
  std::string text;        // the prompt followed by the sampled text
  std::string completion;  // the sampled text alone
  int64_t new_tokens = 0;  // sampled, the end-of-text token excluded
};

class GptRun {
 public:
  // Errors name the path and what is wrong (no checkpoint, not a GPT run).
  explicit GptRun(const std::string& run_or_checkpoint);
  // `options.stop_token` and `.allow` are set here. Throws on a prompt that
  // encodes to nothing. With a verse form, only continuations that keep it
  // are sampled (loom/models/verse.hpp).
  Continuation continue_text(const std::string& prompt, models::SamplingOptions options, uint64_t seed,
                             const std::optional<models::VerseForm>& verse = std::nullopt);
  const std::string& checkpoint() const { return checkpoint_; }

 private:
  std::string checkpoint_;
  data::BpeTokenizer tokenizer_;
  std::unique_ptr<models::GPT> model_;
};

}  // namespace loom::apps
