#include "loom/omni/vocabulary.hpp"

#include <algorithm>

#include "loom/omni/metrics.hpp"
#include "loom/ops/creation.hpp"

namespace loom::omni {

Vocabulary::Vocabulary(data::BpeTokenizer tokenizer) : bpe(std::move(tokenizer)) {
  pad = bpe.special_token_id("<pad>");
  mask = bpe.special_token_id("<mask>");
  bos_en = bpe.special_token_id("<en>");
  bos_zh = bpe.special_token_id("<zh>");
  eos = bpe.special_token_id("<eos>");
  first_special = bpe.vocab_size() - static_cast<int32_t>(bpe.special_tokens().size());
}

std::vector<int64_t> Vocabulary::ids(const std::string& text, int64_t max_len) const {
  const auto all = bpe.encode(text);
  return {all.begin(), all.begin() + std::min<int64_t>(max_len, static_cast<int64_t>(all.size()))};
}

Tensor Vocabulary::batch(const std::vector<std::string>& texts, int64_t max_len) const {
  const int64_t b = static_cast<int64_t>(texts.size());
  std::vector<int64_t> out(b * max_len, pad);
  for (int64_t r = 0; r < b; ++r) {
    const auto row = ids(texts[r], max_len);
    std::copy(row.begin(), row.end(), out.begin() + r * max_len);
  }
  return from_vector(out, {b, max_len});
}

std::string Vocabulary::decode(const std::vector<int32_t>& generated) const {
  std::vector<int32_t> plain;
  for (int32_t id : generated)
    if (id >= 0 && id < first_special) plain.push_back(id);
  return valid_utf8(bpe.decode(plain));
}

int32_t Vocabulary::start_token(const std::string& language) const {
  LOOM_CHECK(language == "en" || language == "zh", "language '", language, "' is not supported (en, zh)");
  return language == "zh" ? bos_zh : bos_en;
}

}  // namespace loom::omni
