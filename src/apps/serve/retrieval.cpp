// Caption search and caption sources (see retrieval.hpp).
#include "retrieval.hpp"

#include <algorithm>
#include <fstream>
#include <unordered_set>

#include "loom/core/error.hpp"

namespace loom::serve {

namespace {

void add_unique(std::vector<std::string>& out, std::unordered_set<std::string>& seen, const std::string& s) {
  if (!s.empty() && seen.insert(s).second) out.push_back(s);
}

}  // namespace

std::vector<Hit> nearest(const float* query, const std::vector<float>& rows, size_t dim, size_t k) {
  const size_t n = dim ? rows.size() / dim : 0;
  std::vector<Hit> hits(n);
  for (size_t i = 0; i < n; ++i) {
    const float* r = rows.data() + i * dim;
    double dot = 0;
    for (size_t j = 0; j < dim; ++j) dot += static_cast<double>(query[j]) * r[j];
    hits[i] = {static_cast<int64_t>(i), static_cast<float>(dot)};
  }
  k = std::min(k, n);
  std::partial_sort(hits.begin(), hits.begin() + static_cast<long>(k), hits.end(), [](const Hit& a, const Hit& b) {
    return a.score != b.score ? a.score > b.score : a.index < b.index;
  });
  hits.resize(k);
  return hits;
}

std::vector<std::string> read_caption_file(const std::string& path) {
  std::ifstream in(path);
  LOOM_CHECK(in.good(), "--index: cannot read '", path, "'");
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    if (a != std::string::npos) add_unique(out, seen, line.substr(a, b - a + 1));
  }
  LOOM_CHECK(!out.empty(), "--index: '", path, "' has no captions (one per line)");
  return out;
}

std::vector<std::string> scene_captions(const data::trimodal::TrimodalDataset& scenes) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& r : scenes.records()) add_unique(out, seen, r.en);
  for (const auto& r : scenes.records()) add_unique(out, seen, r.zh);
  return out;
}

}  // namespace loom::serve
