// Byte-level BPE tokenizer for the language models.
//
// Vocabulary: ids 0..255 are the bytes, id 256 + r is merge r (the
// concatenation of its two parts), then the special tokens. Any byte string
// encodes (invalid UTF-8 and NUL included) and decode(encode(s)) == s.
//
// Pre-tokenization ("loom-bytes-classes-v1"): text is cut into chunks and
// merges never cross a chunk boundary. Bytes fall into five classes:
// whitespace (space \t \n \v \f \r), ASCII letters, ASCII digits, bytes
// >= 0x80 (so a UTF-8 character is never split from its continuation bytes
// by the rule, and CJK text forms one chunk per run of characters), and
// everything else (ASCII punctuation and control bytes). A chunk is a maximal
// run of one non-whitespace class, optionally preceded by one ' '; whitespace
// not taken that way forms its own chunks (a whitespace run that ends in ' '
// before a non-whitespace byte leaves that ' ' to the next chunk).
//   "Hello, world!\n  x" -> "Hello" "," " world" "!" "\n " " x"
//
// "loom-cjk-chars-v1" is the same rule except that each CJK character (code
// points U+2E80-U+9FFF, U+F900-U+FAFF, U+FE30-U+FE4F, U+FF00-U+FFEF and
// U+20000-U+2FA1F: ideographs, CJK and full-width punctuation) is a chunk by
// itself. A token then never spans two Chinese characters, so a line of verse
// of five characters is five tokens, which a small language model can count;
// the classes rule instead merges frequent character pairs and lines come out
// as token sequences of varying length.
//
// Training counts distinct chunks once (a map chunk -> count), then merges
// the most frequent adjacent pair (count weighted by chunk frequency; ties go
// to the lowest (left id, right id)), updating pair counts incrementally only
// in the chunks that contain the merged pair. Encoding applies merges by rank
// within each chunk and caches chunk encodings (thread-safe).
//
// File format (JSON):
//   {"format": "loom-bpe", "version": 1, "pretokenizer": "loom-bytes-classes-v1" | "loom-cjk-chars-v1",
//    "vocab_size": N, "merges": [[a, b], ...]   (in rank order; merge r is id 256 + r),
//    "special_tokens": ["<|endoftext|>", ...]}  (ids 256 + #merges, ...)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace loom::data {

// The pre-tokenization rules above.
enum class Pretokenizer { byte_classes, cjk_chars };

// The rule's name in tokenizer files, and the rule of a name (loom::Error
// naming the known rules when there is none).
const char* pretokenizer_name(Pretokenizer p);
Pretokenizer pretokenizer_from_name(std::string_view name);

struct BpeTrainOptions {
  std::vector<std::string> special_tokens;  // appended after the merges, non-empty, distinct, valid UTF-8
  int64_t min_pair_count = 2;               // stop early (smaller vocab) when the best pair is rarer
  Pretokenizer pretokenizer = Pretokenizer::byte_classes;
};

// The chunks of a pre-tokenization rule, as views into `text`.
std::vector<std::string_view> bpe_chunks(std::string_view text, Pretokenizer rule = Pretokenizer::byte_classes);

class BpeTokenizer {
 public:
  static constexpr const char* kFormat = "loom-bpe";
  static constexpr int kVersion = 1;

  // The 256 byte tokens only.
  BpeTokenizer();

  // Builds from merges in rank order (each part an id already defined) and
  // special tokens; loom::Error on a bad merge or special token.
  BpeTokenizer(std::vector<std::pair<int32_t, int32_t>> merges, std::vector<std::string> special_tokens,
               Pretokenizer pretokenizer = Pretokenizer::byte_classes);

  // vocab_size counts everything: 256 bytes + merges + special tokens. It is
  // an upper bound: training stops early when no pair occurs min_pair_count
  // times.
  static BpeTokenizer train(const std::vector<std::string>& texts, int vocab_size,
                            const BpeTrainOptions& options = {});

  // With allow_special, occurrences of special token strings become their
  // ids; otherwise they are encoded as ordinary bytes.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // loom::Error on an id out of range

  void save(const std::string& path) const;
  static BpeTokenizer load(const std::string& path);

  int vocab_size() const { return static_cast<int>(tokens_.size() + specials_.size()); }
  int num_merges() const { return static_cast<int>(merges_.size()); }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }
  const std::vector<std::string>& special_tokens() const { return specials_; }
  Pretokenizer pretokenizer() const { return pretokenizer_; }
  int32_t special_token_id(std::string_view token) const;  // loom::Error when not a special token
  std::string token_bytes(int id) const;                     // the bytes (or special string) of one id

  bool operator==(const BpeTokenizer& other) const {
    return merges_ == other.merges_ && specials_ == other.specials_ && pretokenizer_ == other.pretokenizer_;
  }

 private:
  struct Cache;
  std::vector<int32_t> encode_chunk(std::string_view chunk) const;
  void append_encoded(std::string_view text, std::vector<int32_t>& out) const;

  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> tokens_;    // bytes of ids 0 .. 255 + #merges
  std::vector<std::string> specials_;  // ids from tokens_.size()
  Pretokenizer pretokenizer_ = Pretokenizer::byte_classes;
  std::unordered_map<uint64_t, int32_t> ranks_;  // (left << 32 | right) -> merge rank
  std::shared_ptr<Cache> cache_;                 // chunk -> ids; copies have the same merges, so they share it
};

}  // namespace loom::data
