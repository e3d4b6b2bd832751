// Nearest-caption search for /v1/retrieve, and where its default captions
// come from: a text file (--index, one caption per line) or the evaluation
// scenes of the run's dataset (English and Chinese captions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loom/data/trimodal.hpp"

namespace loom::serve {

struct Hit {
  int64_t index = 0;  // row of the searched captions
  float score = 0;    // cosine similarity (the embeddings are unit-norm)
};

// The min(k, n) rows of `rows` (n x dim, row-major) with the largest dot
// product with `query` (dim), best first; ties keep the lower index first.
std::vector<Hit> nearest(const float* query, const std::vector<float>& rows, size_t dim, size_t k);

// The non-blank lines of `path`, trimmed, each distinct caption once (errors name the file).
std::vector<std::string> read_caption_file(const std::string& path);
// The English captions of the scenes, then the Chinese ones, each distinct caption once.
std::vector<std::string> scene_captions(const data::trimodal::TrimodalDataset& scenes);

}  // namespace loom::serve
