// The text decoder: a causal transformer whose blocks cross-attend to the
// tokens of a chosen set of encodings. Grouped decoding conditions it on one
// modality (image -> caption, audio -> transcript, video -> caption); joint
// decoding on several at once (image and audio -> text), their tokens
// concatenated (omni::concat). The output head is tied to the token
// embedding. Generation: batched greedy search and beam search.
#pragma once

#include <cstdint>
#include <vector>

#include "loom/omni/encoders.hpp"

namespace loom::omni {

struct DecodeOptions {
  int64_t max_tokens = 32;   // generated after the start token
  int64_t beam_size = 1;     // 1: greedy
  double length_penalty = 1.0;  // beam scores are log p / length^penalty
};

class TextDecoder : public nn::Module {
 public:
  TextDecoder(int64_t vocab_size, int64_t max_len, const StackOptions& options, Generator* gen = nullptr);
  // ids i64 [B, T] (starting with a start token) -> logits [B, T, vocab].
  Tensor forward(const Tensor& ids, const Encoded& context);
  // One sequence per row of the context, starting from start[b] and ending
  // before the first `end` token (excluded from the result).
  std::vector<std::vector<int32_t>> generate(const Encoded& context, const std::vector<int32_t>& start,
                                             int32_t end, const DecodeOptions& options = {});
  std::shared_ptr<nn::Embedding> embed;
  Tensor positions;  // [max_len, D]
  std::shared_ptr<TransformerStack> stack;

 private:
  std::vector<std::vector<int32_t>> greedy(const Encoded& context, const std::vector<int32_t>& start, int32_t end,
                                           int64_t max_tokens);
  std::vector<int32_t> beam(const Encoded& context, int32_t start, int32_t end, const DecodeOptions& options);
  std::string type_name() const override { return "TextDecoder"; }
};

// Row `row` of an encoding, as a batch of `copies` identical rows.
Encoded repeat_row(const Encoded& e, int64_t row, int64_t copies);

}  // namespace loom::omni
