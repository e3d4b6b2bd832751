// The caption vocabulary of the omni models: a byte-level BPE with the
// special tokens <pad>, <mask>, <en>, <zh> (the decoder's start token picks
// the language) and <eos>, appended after the merges.
#pragma once

#include <string>
#include <vector>

#include "loom/core/tensor.hpp"
#include "loom/data/bpe.hpp"

namespace loom::omni {

struct Vocabulary {
  data::BpeTokenizer bpe;
  int32_t pad = 0, mask = 0, bos_en = 0, bos_zh = 0, eos = 0;
  int32_t first_special = 0;  // ids below are ordinary tokens
  // loom::Error when the tokenizer lacks one of specials().
  explicit Vocabulary(data::BpeTokenizer tokenizer);
  static std::vector<std::string> specials() { return {"<pad>", "<mask>", "<en>", "<zh>", "<eos>"}; }

  // At most max_len BPE ids of a text.
  std::vector<int64_t> ids(const std::string& text, int64_t max_len) const;
  // i64 [B, max_len] of several texts, padded with pad (the text encoder's input).
  Tensor batch(const std::vector<std::string>& texts, int64_t max_len) const;
  // The text of generated ids, special tokens dropped, invalid UTF-8 replaced.
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t start_token(const std::string& language) const;  // "en" or "zh"
};

}  // namespace loom::omni
