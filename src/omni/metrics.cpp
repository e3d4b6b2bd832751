#include "loom/omni/metrics.hpp"

#include <algorithm>
#include <numeric>

#include "loom/autograd/grad_mode.hpp"
#include "loom/omni/losses.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

namespace {

// 1 - C(g - m, k) / C(g, k): a random size-k subset of g items holds one of m.
double random_hit(int64_t g, int64_t m, int64_t k) {
  if (m <= 0) return 0.0;
  if (k >= g) return 1.0;
  double miss = 1.0;
  for (int64_t i = 0; i < k; ++i) miss *= static_cast<double>(g - m - i) / static_cast<double>(g - i);
  return 1.0 - std::max(0.0, miss);
}

}  // namespace

Recall recall_at_k(const Tensor& queries, const Tensor& gallery, const std::vector<int64_t>& query_keys,
                   const std::vector<int64_t>& gallery_keys, const std::vector<int64_t>& ks) {
  LOOM_CHECK(queries.dim() == 2 && gallery.dim() == 2 && queries.size(1) == gallery.size(1),
             "recall_at_k: queries ", shape_str(queries.shape()), " and gallery ", shape_str(gallery.shape()),
             " must be [Q, E] and [G, E]");
  LOOM_CHECK(static_cast<int64_t>(query_keys.size()) == queries.size(0) &&
                 static_cast<int64_t>(gallery_keys.size()) == gallery.size(0),
             "recall_at_k: ", query_keys.size(), " query keys and ", gallery_keys.size(), " gallery keys for ",
             queries.size(0), " queries and ", gallery.size(0), " items");
  NoGradGuard no_grad;
  AutocastGuard f32_similarities(DType::bf16, false);  // rankings from f32 cosines, whatever the caller's precision
  // Similarities on the embeddings' device; the ranking on the host.
  const Tensor sim = matmul(unit_rows(to_dtype(queries, DType::f32)), unit_rows(to_dtype(gallery, DType::f32)).transpose(0, 1))
                         .to(kCPU)
                         .contiguous();
  const int64_t q = queries.size(0), g = gallery.size(0);
  Recall r{ks, std::vector<double>(ks.size(), 0.0), std::vector<double>(ks.size(), 0.0)};
  std::vector<int64_t> order(g);
  for (int64_t i = 0; i < q; ++i) {
    const float* row = sim.data<float>() + i * g;
    std::iota(order.begin(), order.end(), 0);
    // ties broken by gallery index, so the result never depends on the sort
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    int64_t first_hit = g, matches = 0;
    for (int64_t j = 0; j < g; ++j) {
      if (gallery_keys[order[j]] != query_keys[i]) continue;
      first_hit = std::min(first_hit, j);
    }
    for (int64_t j = 0; j < g; ++j) matches += gallery_keys[j] == query_keys[i];
    for (size_t k = 0; k < ks.size(); ++k) {
      r.recall[k] += first_hit < ks[k] ? 1.0 : 0.0;
      r.chance[k] += random_hit(g, matches, ks[k]);
    }
  }
  for (size_t k = 0; k < ks.size(); ++k) {
    r.recall[k] /= static_cast<double>(std::max<int64_t>(q, 1));
    r.chance[k] /= static_cast<double>(std::max<int64_t>(q, 1));
  }
  return r;
}

namespace {
// The length of the valid UTF-8 sequence starting at text[i], or 0.
size_t utf8_sequence(const std::string& text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 0;
  return len;
}
}  // namespace

std::string valid_utf8(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text, i, len);
      i += len;
    }
  }
  return out;
}

std::vector<uint32_t> utf8_code_points(const std::string& text) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t len = utf8_sequence(text, i);
    if (len == 0) {  // one invalid byte, kept distinct from every code point
      out.push_back(0x110000u + c);
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

double char_error_rate(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  LOOM_CHECK(hypotheses.size() == references.size(), "char_error_rate: ", hypotheses.size(), " hypotheses for ",
             references.size(), " references");
  int64_t errors = 0, total = 0;
  std::vector<int64_t> prev, cur;
  for (size_t n = 0; n < references.size(); ++n) {
    const auto h = utf8_code_points(hypotheses[n]), r = utf8_code_points(references[n]);
    prev.resize(h.size() + 1);
    cur.resize(h.size() + 1);
    std::iota(prev.begin(), prev.end(), 0);
    for (size_t i = 1; i <= r.size(); ++i) {
      cur[0] = static_cast<int64_t>(i);
      for (size_t j = 1; j <= h.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r[i - 1] == h[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    errors += prev[h.size()];
    total += static_cast<int64_t>(r.size());
  }
  return total > 0 ? static_cast<double>(errors) / static_cast<double>(total) : 0.0;
}

}  // namespace loom::omni
