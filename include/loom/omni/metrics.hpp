// Evaluation measures of the omni-modal model, each next to its chance level.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::omni {

// Retrieval: for each query (row of queries [Q, E]) the gallery items
// (gallery [G, E]) ranked by cosine similarity; a query scores at k when one
// of its k best items shows the same thing (equal key). Keys make duplicate
// captions count as the same answer, which they are.
struct Recall {
  std::vector<int64_t> ks;
  std::vector<double> recall;  // per k
  std::vector<double> chance;  // per k: the expectation under a random ranking
};
Recall recall_at_k(const Tensor& queries, const Tensor& gallery, const std::vector<int64_t>& query_keys,
                   const std::vector<int64_t>& gallery_keys, const std::vector<int64_t>& ks = {1, 5, 10});

// Character error rate: total Levenshtein distance over Unicode code points
// (UTF-8 decoded) divided by the total reference length.
double char_error_rate(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);
// The code points of UTF-8 text (invalid bytes count as one code point each).
std::vector<uint32_t> utf8_code_points(const std::string& text);
// The text with each invalid UTF-8 byte replaced by U+FFFD (byte-level
// decoders can stop inside a character; JSON needs valid UTF-8).
std::string valid_utf8(const std::string& text);

}  // namespace loom::omni
