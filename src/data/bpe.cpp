// Byte-level BPE: pre-tokenization, training, encode/decode and the JSON file
// (the rules are documented in include/loom/data/bpe.hpp).
#include "loom/data/bpe.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "loom/core/error.hpp"
#include "loom/data/text.hpp"

namespace loom::data {

namespace {

constexpr int32_t kBytes = 256;
constexpr size_t kMaxCachedChunk = 256;       // longer chunks are encoded every time
constexpr size_t kMaxCacheEntries = 1 << 20;  // the cache is emptied when it grows past this

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b); }
int32_t key_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t key_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

enum class ByteClass { space, letter, digit, high, other };

ByteClass byte_class(unsigned char c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r') return ByteClass::space;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return ByteClass::letter;
  if (c >= '0' && c <= '9') return ByteClass::digit;
  if (c >= 0x80) return ByteClass::high;
  return ByteClass::other;
}

ByteClass class_at(std::string_view s, size_t i) { return byte_class(static_cast<unsigned char>(s[i])); }

bool is_cjk(uint32_t cp) {
  return (cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
         (cp >= 0xFF00 && cp <= 0xFFEF) || (cp >= 0x20000 && cp <= 0x2FA1F);
}

// Bytes of the well-formed CJK character that starts at s[i], or 0 when none
// does (CJK characters take three or four bytes in UTF-8).
size_t cjk_char_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const auto continuation = [&](size_t j) { return j < s.size() && (byte(j) & 0xC0) == 0x80; };
  const unsigned char lead = byte(i);
  if ((lead & 0xF0) == 0xE0 && continuation(i + 1) && continuation(i + 2)) {
    const uint32_t cp = (uint32_t{lead & 0x0Fu} << 12) | (uint32_t{byte(i + 1) & 0x3Fu} << 6) | (byte(i + 2) & 0x3Fu);
    return is_cjk(cp) ? 3 : 0;
  }
  if ((lead & 0xF8) == 0xF0 && continuation(i + 1) && continuation(i + 2) && continuation(i + 3)) {
    const uint32_t cp = (uint32_t{lead & 0x07u} << 18) | (uint32_t{byte(i + 1) & 0x3Fu} << 12) |
                        (uint32_t{byte(i + 2) & 0x3Fu} << 6) | (byte(i + 3) & 0x3Fu);
    return is_cjk(cp) ? 4 : 0;
  }
  return 0;
}

constexpr const char* kByteClassesName = "loom-bytes-classes-v1";
constexpr const char* kCjkCharsName = "loom-cjk-chars-v1";

}  // namespace

const char* pretokenizer_name(Pretokenizer p) {
  return p == Pretokenizer::cjk_chars ? kCjkCharsName : kByteClassesName;
}

Pretokenizer pretokenizer_from_name(std::string_view name) {
  if (name == kByteClassesName) return Pretokenizer::byte_classes;
  if (name == kCjkCharsName) return Pretokenizer::cjk_chars;
  LOOM_FAIL("unknown BPE pre-tokenizer '", name, "' (known: ", kByteClassesName, ", ", kCjkCharsName, ")");
}

std::vector<std::string_view> bpe_chunks(std::string_view text, Pretokenizer rule) {
  const bool split_cjk = rule == Pretokenizer::cjk_chars;
  std::vector<std::string_view> chunks;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    ByteClass cls = class_at(text, i);
    if (text[i] == ' ' && i + 1 < n && class_at(text, i + 1) != ByteClass::space) {
      ++i;  // the leading space joins the run after it
      cls = class_at(text, i);
    }
    if (cls == ByteClass::space) {
      while (i < n && class_at(text, i) == ByteClass::space) ++i;
      if (i < n && i - start > 1 && text[i - 1] == ' ') --i;  // leave the last ' ' to the next word
    } else if (split_cjk && cls == ByteClass::high) {
      // One CJK character alone, or a run of other non-ASCII bytes up to the next one.
      if (const size_t len = cjk_char_length(text, i)) i += len;
      else
        while (i < n && class_at(text, i) == cls && cjk_char_length(text, i) == 0) ++i;
    } else {
      while (i < n && class_at(text, i) == cls) ++i;
    }
    chunks.push_back(text.substr(start, i - start));
  }
  return chunks;
}

struct BpeTokenizer::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>> chunks;
};

BpeTokenizer::BpeTokenizer() : BpeTokenizer({}, {}) {}

BpeTokenizer::BpeTokenizer(std::vector<std::pair<int32_t, int32_t>> merges, std::vector<std::string> special_tokens,
                           Pretokenizer pretokenizer)
    : merges_(std::move(merges)),
      specials_(std::move(special_tokens)),
      pretokenizer_(pretokenizer),
      cache_(std::make_shared<Cache>()) {
  tokens_.reserve(kBytes + merges_.size());
  for (int b = 0; b < kBytes; ++b) tokens_.emplace_back(1, static_cast<char>(b));
  ranks_.reserve(merges_.size());
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto [a, b] = merges_[r];
    const int32_t defined = kBytes + static_cast<int32_t>(r);
    for (const int32_t part : {a, b})
      LOOM_CHECK(part >= 0 && part < defined, "BpeTokenizer: merges[", r, "] = [", a, ", ", b, "] refers to id ", part,
                 ", which is not defined before this merge (it may use ids 0..", defined - 1, ")");
    const auto [it, inserted] = ranks_.emplace(pair_key(a, b), static_cast<int32_t>(r));
    LOOM_CHECK(inserted, "BpeTokenizer: merges[", r, "] = [", a, ", ", b, "] duplicates merges[", it->second, "]");
    tokens_.push_back(tokens_[a] + tokens_[b]);
  }
  for (size_t i = 0; i < specials_.size(); ++i) {
    const std::string& s = specials_[i];
    LOOM_CHECK(!s.empty(), "BpeTokenizer: special_tokens[", i, "] is empty");
    const size_t bad = utf8_invalid_offset(s);
    LOOM_CHECK(bad == std::string_view::npos, "BpeTokenizer: special_tokens[", i, "] is not valid UTF-8 at byte offset ",
               bad);
    for (size_t j = 0; j < i; ++j)
      LOOM_CHECK(specials_[j] != s, "BpeTokenizer: special_tokens[", i, "] '", s, "' duplicates special_tokens[", j, "]");
  }
}

// ---------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------

namespace {

struct Word {
  std::vector<int32_t> ids;
  int64_t count;
};

struct HeapEntry {
  int64_t count;
  uint64_t key;
  // std::priority_queue pops the largest: most frequent, then lowest (left, right).
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : key > o.key; }
};

// Replaces every non-overlapping (a, b), left to right, by `merged`; false when absent.
bool merge_in_word(std::vector<int32_t>& ids, int32_t a, int32_t b, int32_t merged) {
  size_t out = 0;
  bool changed = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
      ids[out++] = merged;
      ++i;
      changed = true;
    } else {
      ids[out++] = ids[i];
    }
  }
  ids.resize(out);
  return changed;
}

bool word_has_pair(const std::vector<int32_t>& ids, int32_t a, int32_t b) {
  for (size_t i = 0; i + 1 < ids.size(); ++i)
    if (ids[i] == a && ids[i + 1] == b) return true;
  return false;
}

}  // namespace

BpeTokenizer BpeTokenizer::train(const std::vector<std::string>& texts, int vocab_size, const BpeTrainOptions& options) {
  const int fixed = kBytes + static_cast<int>(options.special_tokens.size());
  LOOM_CHECK(vocab_size >= fixed, "BpeTokenizer::train: vocab_size ", vocab_size, " is smaller than the 256 byte tokens + ",
             options.special_tokens.size(), " special tokens");
  LOOM_CHECK(options.min_pair_count >= 1, "BpeTokenizer::train: min_pair_count must be >= 1, got ",
             options.min_pair_count);
  const size_t target = static_cast<size_t>(vocab_size - fixed);

  // Distinct chunks with their counts, sorted so everything below is deterministic.
  std::unordered_map<std::string_view, int64_t> chunk_counts;
  for (const auto& text : texts)
    for (const auto chunk : bpe_chunks(text, options.pretokenizer))
      if (chunk.size() >= 2) ++chunk_counts[chunk];  // a single byte has no pair to merge
  std::vector<std::pair<std::string_view, int64_t>> sorted(chunk_counts.begin(), chunk_counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [chunk, count] : sorted) {
    Word w{{}, count};
    w.ids.reserve(chunk.size());
    for (const char c : chunk) w.ids.push_back(static_cast<unsigned char>(c));
    words.push_back(std::move(w));
  }

  std::unordered_map<uint64_t, int64_t> counts;              // pair -> weighted count
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that held it (superset)
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& ids = words[w].ids;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const uint64_t key = pair_key(ids[i], ids[i + 1]);
      counts[key] += words[w].count;
      auto& list = where[key];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [key, count] : counts) heap.push({count, key});

  std::vector<std::pair<int32_t, int32_t>> merges;
  merges.reserve(target);
  std::vector<int32_t> seen(words.size(), -1);  // the merge that last visited each word
  std::vector<uint64_t> fresh;                  // pairs made by this merge
  while (merges.size() < target && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const auto found = counts.find(top.key);
    const int64_t current = found == counts.end() ? 0 : found->second;
    if (current != top.count) {  // stale: counts of existing pairs only fall, so re-queue at the true count
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    if (current < options.min_pair_count) break;

    const int32_t a = key_left(top.key), b = key_right(top.key);
    const int32_t merged = kBytes + static_cast<int32_t>(merges.size());
    merges.emplace_back(a, b);
    std::vector<int32_t> affected = std::move(where[top.key]);
    where.erase(top.key);
    fresh.clear();
    for (const int32_t w : affected) {
      if (seen[w] == merged) continue;
      seen[w] = merged;
      auto& ids = words[w].ids;
      if (!word_has_pair(ids, a, b)) continue;
      const int64_t n = words[w].count;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        const auto it = counts.find(pair_key(ids[i], ids[i + 1]));
        if ((it->second -= n) == 0) counts.erase(it);
      }
      merge_in_word(ids, a, b, merged);
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        const uint64_t key = pair_key(ids[i], ids[i + 1]);
        counts[key] += n;
        if (ids[i] == merged || ids[i + 1] == merged) {
          auto& list = where[key];
          if (list.empty() || list.back() != w) list.push_back(w);
          fresh.push_back(key);
        }
      }
    }
    std::sort(fresh.begin(), fresh.end());
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    for (const uint64_t key : fresh) heap.push({counts[key], key});
  }
  return BpeTokenizer(std::move(merges), options.special_tokens, options.pretokenizer);
}

// ---------------------------------------------------------------------------
// Encoding and decoding
// ---------------------------------------------------------------------------

std::vector<int32_t> BpeTokenizer::encode_chunk(std::string_view chunk) const {
  const int n = static_cast<int>(chunk.size());
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = static_cast<unsigned char>(chunk[i]);
  if (n < 2 || ranks_.empty()) return ids;

  // Symbols in a linked list; a min-heap of (rank, position) candidate pairs.
  // Merges of one rank happen left to right and every merge a rank makes has
  // a higher rank, so this applies the merges exactly as training did.
  std::vector<int32_t> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Candidate {
    int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(std::greater<>{}, std::move(storage));
  auto consider = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = ranks_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != ranks_.end()) heap.push({it->second, pos, ids[pos], ids[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = next[c.pos];
    if (ids[c.pos] != c.left || right < 0 || ids[right] != c.right) continue;  // stale
    ids[c.pos] = kBytes + c.rank;
    ids[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  std::vector<int32_t> out;
  out.reserve(n);
  for (int i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
  return out;
}

void BpeTokenizer::append_encoded(std::string_view text, std::vector<int32_t>& out) const {
  for (const auto chunk : bpe_chunks(text, pretokenizer_)) {
    if (chunk.size() == 1) {
      out.push_back(static_cast<unsigned char>(chunk[0]));
      continue;
    }
    if (chunk.size() > kMaxCachedChunk) {
      const auto ids = encode_chunk(chunk);
      out.insert(out.end(), ids.begin(), ids.end());
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      const auto it = cache_->chunks.find(std::string(chunk));
      if (it != cache_->chunks.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    auto ids = encode_chunk(chunk);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->chunks.size() >= kMaxCacheEntries) cache_->chunks.clear();
    cache_->chunks.emplace(std::string(chunk), std::move(ids));
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 1);
  if (!allow_special || specials_.empty()) {
    append_encoded(text, out);
    return out;
  }
  // Split at special tokens: the earliest occurrence wins, the longest on a tie.
  std::vector<size_t> next(specials_.size());  // next occurrence of each special token at or after pos
  for (size_t s = 0; s < specials_.size(); ++s) next[s] = text.find(specials_[s]);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best_at = std::string_view::npos, best = 0;
    for (size_t s = 0; s < specials_.size(); ++s) {
      if (next[s] != std::string_view::npos && next[s] < pos) next[s] = text.find(specials_[s], pos);
      if (next[s] == std::string_view::npos) continue;
      if (next[s] < best_at || (next[s] == best_at && specials_[s].size() > specials_[best].size())) {
        best_at = next[s];
        best = s;
      }
    }
    if (best_at == std::string_view::npos) break;
    append_encoded(text.substr(pos, best_at - pos), out);
    out.push_back(static_cast<int32_t>(tokens_.size() + best));
    pos = best_at + specials_[best].size();
  }
  if (pos < text.size()) append_encoded(text.substr(pos), out);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size() * 3);
  const auto n_tokens = static_cast<int32_t>(tokens_.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    LOOM_CHECK(id >= 0 && id < vocab_size(), "BpeTokenizer::decode: id ", id, " at position ", i,
               " is out of range [0, ", vocab_size(), ")");
    out += id < n_tokens ? tokens_[id] : specials_[id - n_tokens];
  }
  return out;
}

std::string BpeTokenizer::token_bytes(int id) const {
  LOOM_CHECK(id >= 0 && id < vocab_size(), "BpeTokenizer::token_bytes: id ", id, " is out of range [0, ", vocab_size(),
             ")");
  const auto n_tokens = static_cast<int>(tokens_.size());
  return id < n_tokens ? tokens_[id] : specials_[id - n_tokens];
}

int32_t BpeTokenizer::special_token_id(std::string_view token) const {
  for (size_t s = 0; s < specials_.size(); ++s)
    if (specials_[s] == token) return static_cast<int32_t>(tokens_.size() + s);
  LOOM_FAIL("BpeTokenizer::special_token_id: '", token, "' is not a special token of this tokenizer (it has ",
            specials_.size(), ")");
}

// ---------------------------------------------------------------------------
// The JSON file
// ---------------------------------------------------------------------------

void BpeTokenizer::save(const std::string& path) const {
  using nlohmann::json;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  LOOM_CHECK(out.good(), "BpeTokenizer::save: cannot open '", path, "' for writing: ", std::strerror(errno));
  out << "{\n  \"format\": " << json(kFormat).dump() << ",\n  \"version\": " << kVersion
      << ",\n  \"pretokenizer\": " << json(pretokenizer_name(pretokenizer_)).dump() << ",\n  \"vocab_size\": " << vocab_size()
      << ",\n  \"special_tokens\": " << json(specials_).dump() << ",\n  \"merges\": [";
  for (size_t r = 0; r < merges_.size(); ++r)
    out << (r == 0 ? "\n    [" : ",\n    [") << merges_[r].first << ", " << merges_[r].second << "]";
  out << (merges_.empty() ? "]\n}\n" : "\n  ]\n}\n");
  out.close();
  LOOM_CHECK(!out.fail(), "BpeTokenizer::save: error writing '", path, "'");
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  using nlohmann::json;
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), "BpeTokenizer::load: cannot open '", path, "': ", std::strerror(errno));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    LOOM_FAIL("BpeTokenizer::load: '", path, "' is not valid JSON: ", e.what());
  }
  const std::string where = "BpeTokenizer::load: '" + path + "': ";
  LOOM_CHECK(j.is_object(), where, "the top level must be a JSON object, got ", j.type_name());
  auto field = [&](const char* name) -> const json& {
    LOOM_CHECK(j.contains(name), where, "field '", name, "' is missing");
    return j.at(name);
  };

  const json& format = field("format");
  LOOM_CHECK(format.is_string() && format.get<std::string>() == kFormat, where, "field 'format' is ", format.dump(),
             ", expected \"", kFormat, "\"");
  const json& version = field("version");
  LOOM_CHECK(version.is_number_integer() && version.get<int64_t>() == kVersion, where, "field 'version' is ",
             version.dump(), "; this build reads version ", kVersion);
  const json& pretokenizer = field("pretokenizer");
  LOOM_CHECK(pretokenizer.is_string(), where, "field 'pretokenizer' must be a string, got ", pretokenizer.dump());
  Pretokenizer rule = Pretokenizer::byte_classes;
  try {
    rule = pretokenizer_from_name(pretokenizer.get<std::string>());
  } catch (const Error& e) {
    LOOM_FAIL(where, "field 'pretokenizer': ", e.what());
  }

  const json& merges_json = field("merges");
  LOOM_CHECK(merges_json.is_array(), where, "field 'merges' must be an array, got ", merges_json.type_name());
  std::vector<std::pair<int32_t, int32_t>> merges;
  merges.reserve(merges_json.size());
  for (size_t r = 0; r < merges_json.size(); ++r) {
    const json& m = merges_json[r];
    const bool ok = m.is_array() && m.size() == 2 && m[0].is_number_integer() && m[1].is_number_integer() &&
                    m[0].get<int64_t>() >= INT32_MIN && m[0].get<int64_t>() <= INT32_MAX &&
                    m[1].get<int64_t>() >= INT32_MIN && m[1].get<int64_t>() <= INT32_MAX;
    LOOM_CHECK(ok, where, "merges[", r, "] is ", m.dump(), ", expected a pair of token ids [left, right]");
    merges.emplace_back(m[0].get<int32_t>(), m[1].get<int32_t>());
  }

  const json& specials_json = field("special_tokens");
  LOOM_CHECK(specials_json.is_array(), where, "field 'special_tokens' must be an array, got ",
             specials_json.type_name());
  std::vector<std::string> specials;
  for (size_t i = 0; i < specials_json.size(); ++i) {
    LOOM_CHECK(specials_json[i].is_string(), where, "special_tokens[", i, "] is ", specials_json[i].dump(),
               ", expected a string");
    specials.push_back(specials_json[i].get<std::string>());
  }

  const json& size = field("vocab_size");
  const int64_t expected = kBytes + static_cast<int64_t>(merges.size() + specials.size());
  LOOM_CHECK(size.is_number_integer() && size.get<int64_t>() == expected, where, "field 'vocab_size' is ", size.dump(),
             ", but 256 bytes + ", merges.size(), " merges + ", specials.size(), " special tokens make ", expected);

  try {
    return BpeTokenizer(std::move(merges), std::move(specials), rule);
  } catch (const Error& e) {
    LOOM_FAIL(where, e.what());
  }
}

}  // namespace loom::data
