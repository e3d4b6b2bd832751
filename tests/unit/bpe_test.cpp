// Byte-level BPE: chunking, lossless round trips on any bytes, encode against
// a naive reference, deterministic training, the JSON file and its errors,
// and compression on held-out poetry from the real fortune corpus.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>

#include <loom/core/error.hpp>
#include <loom/data/bpe.hpp>
#include <loom/data/text.hpp>

using namespace loom::data;
using Catch::Contains;

namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("loom_bpe_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Random byte strings: raw bytes (mostly invalid UTF-8, NULs included),
// ASCII words, CJK characters and truncated sequences, mixed.
std::string random_bytes(std::mt19937_64& rng) {
  static const char* pieces[] = {"the", " and", " ", "  ", "\n", "\t", ",", ".", "\xE6\x98\xA5", "\xE9\xA2\x98",
                                 "\xEF\xBC\x8C", "\xE6\x98", "\x80", "\xFF", "" /* NUL */, "42"};
  std::string s;
  const int len = std::uniform_int_distribution<int>(0, 120)(rng);
  const int mode = static_cast<int>(rng() % 3);
  for (int i = 0; i < len; ++i) {
    if (mode == 0 || (mode == 2 && rng() % 2)) {
      s.push_back(static_cast<char>(rng() & 0xFF));
    } else {
      const size_t k = rng() % std::size(pieces);
      if (pieces[k][0] == '\0') s.push_back('\0');
      else s += pieces[k];
    }
  }
  return s;
}

// A small tokenizer with merges over ASCII, CJK bytes and raw high bytes.
BpeTokenizer small_tokenizer(const std::vector<std::string>& extra_specials = {},
                             Pretokenizer rule = Pretokenizer::byte_classes) {
  std::mt19937_64 rng(1234);
  std::vector<std::string> texts = {
      "the cat and the hat and the bat", "\xE6\x98\xA5\xE7\x9C\xA0\xE4\xB8\x8D\xE8\xA7\x89\xE6\x99\x93\xEF\xBC\x8C",
      "\xE6\x98\xA5\xE7\x9C\xA0\xE6\x98\xA5\xE7\x9C\xA0", "aaaaaaa bbbb aaaa", "  indented\n  indented"};
  for (int i = 0; i < 200; ++i) texts.push_back(random_bytes(rng));
  BpeTrainOptions options;
  options.special_tokens = extra_specials;
  options.min_pair_count = 1;  // merge rare pairs too: more merges over raw high bytes
  options.pretokenizer = rule;
  return BpeTokenizer::train(texts, 700 + static_cast<int>(extra_specials.size()), options);
}

// The well-formed CJK characters in s, by an independent decoder (ideographs and
// CJK punctuation: U+2E80-9FFF, U+F900-FAFF, U+FE30-FE4F, U+FF00-FFEF, U+20000-2FA1F).
int cjk_characters(std::string_view s) {
  int count = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = [&](size_t j) { return j < s.size() ? static_cast<unsigned char>(s[j]) : 0u; };
    const auto cont = [&](size_t j) { return (b(j) & 0xC0u) == 0x80u; };
    uint32_t cp = 0;
    if (b(i) >= 0xE0 && b(i) < 0xF0 && cont(i + 1) && cont(i + 2))
      cp = ((b(i) & 0x0Fu) << 12) | ((b(i + 1) & 0x3Fu) << 6) | (b(i + 2) & 0x3Fu);
    else if (b(i) >= 0xF0 && b(i) < 0xF8 && cont(i + 1) && cont(i + 2) && cont(i + 3))
      cp = ((b(i) & 0x07u) << 18) | ((b(i + 1) & 0x3Fu) << 12) | ((b(i + 2) & 0x3Fu) << 6) | (b(i + 3) & 0x3Fu);
    const bool cjk = (cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                     (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFFEF) ||
                     (cp >= 0x20000 && cp <= 0x2FA1F);
    count += cjk;
  }
  return count;
}

// Reference encoder: every merge in rank order, left to right, in each chunk.
std::vector<int32_t> naive_encode(const BpeTokenizer& tok, std::string_view text) {
  std::vector<int32_t> out;
  for (const auto chunk : bpe_chunks(text)) {
    std::vector<int32_t> ids;
    for (const char c : chunk) ids.push_back(static_cast<unsigned char>(c));
    for (size_t r = 0; r < tok.merges().size(); ++r) {
      const auto [a, b] = tok.merges()[r];
      std::vector<int32_t> merged;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
          merged.push_back(256 + static_cast<int32_t>(r));
          ++i;
        } else {
          merged.push_back(ids[i]);
        }
      }
      ids = std::move(merged);
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("bpe_chunks cuts at class and whitespace boundaries and loses nothing", "[bpe]") {
  auto chunks = [](std::string_view s) {
    std::vector<std::string> out;
    for (auto c : bpe_chunks(s)) out.emplace_back(c);
    return out;
  };
  CHECK(chunks("Hello, world!\n  x") == std::vector<std::string>{"Hello", ",", " world", "!", "\n ", " x"});
  CHECK(chunks("a  b") == std::vector<std::string>{"a", " ", " b"});
  CHECK(chunks("year 1999.") == std::vector<std::string>{"year", " 1999", "."});
  CHECK(chunks("\xE6\x98\xA5\xE7\x9C\xA0\xEF\xBC\x8C ok  ") ==
        std::vector<std::string>{"\xE6\x98\xA5\xE7\x9C\xA0\xEF\xBC\x8C", " ok", "  "});
  CHECK(chunks("").empty());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200; ++i) {
    const std::string s = random_bytes(rng);
    std::string joined;
    for (auto c : bpe_chunks(s)) {
      REQUIRE(!c.empty());
      joined += c;
    }
    REQUIRE(joined == s);
  }
}

TEST_CASE("the cjk_chars rule gives every CJK character its own chunk", "[bpe]") {
  auto chunks = [](std::string_view s) {
    std::vector<std::string> out;
    for (auto c : bpe_chunks(s, Pretokenizer::cjk_chars)) out.emplace_back(c);
    return out;
  };
  // 春眠，ok: two ideographs and a full-width comma, each alone; ASCII as before.
  CHECK(chunks("\xE6\x98\xA5\xE7\x9C\xA0\xEF\xBC\x8C ok  ") ==
        std::vector<std::string>{"\xE6\x98\xA5", "\xE7\x9C\xA0", "\xEF\xBC\x8C", " ok", "  "});
  // A space before an ideograph joins it; é (two bytes) and 😀 (four, not CJK) stay runs; 𠀀 (U+20000) is CJK.
  CHECK(chunks(" \xE6\x98\xA5\xC3\xA9\xF0\x9F\x98\x80\xF0\xA0\x80\x80") ==
        std::vector<std::string>{" \xE6\x98\xA5", "\xC3\xA9\xF0\x9F\x98\x80", "\xF0\xA0\x80\x80"});
  // A truncated CJK character is not one: its bytes stay in the run.
  CHECK(chunks("\xE6\x98\xE6\x98\xA5") == std::vector<std::string>{"\xE6\x98", "\xE6\x98\xA5"});
  CHECK(pretokenizer_from_name(pretokenizer_name(Pretokenizer::cjk_chars)) == Pretokenizer::cjk_chars);
  CHECK_THROWS_WITH(pretokenizer_from_name("gpt2"), Contains("gpt2") && Contains("loom-cjk-chars-v1"));
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) {
    const std::string s = random_bytes(rng);
    std::string joined;
    for (auto c : bpe_chunks(s, Pretokenizer::cjk_chars)) {
      REQUIRE(!c.empty());
      joined += c;
    }
    REQUIRE(joined == s);
  }
}

TEST_CASE("a cjk_chars tokenizer never spans two CJK characters and round-trips", "[bpe]") {
  const BpeTokenizer tok = small_tokenizer({"<|endoftext|>"}, Pretokenizer::cjk_chars);
  REQUIRE(tok.pretokenizer() == Pretokenizer::cjk_chars);
  // 春眠春眠 is frequent in the training texts: the classes rule merges it into one token, this rule cannot.
  const std::string spring_sleep = "\xE6\x98\xA5\xE7\x9C\xA0\xE6\x98\xA5\xE7\x9C\xA0";
  CHECK(tok.encode(spring_sleep).size() == 4);
  CHECK(small_tokenizer({"<|endoftext|>"}).encode(spring_sleep).size() < 4);
  for (int id = 0; id < tok.vocab_size() - 1; ++id) {
    const std::string bytes = tok.token_bytes(id);
    INFO("token " << id);
    REQUIRE(cjk_characters(bytes) <= 1);
  }
  std::mt19937_64 rng(43);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_bytes(rng);
    REQUIRE(tok.decode(tok.encode(s)) == s);
  }
  const std::string path = (std::filesystem::temp_directory_path() / "loom_bpe_cjk_test.json").string();
  tok.save(path);
  const BpeTokenizer loaded = BpeTokenizer::load(path);
  CHECK(loaded == tok);
  CHECK(loaded.encode(spring_sleep) == tok.encode(spring_sleep));
  std::filesystem::remove(path);
}

TEST_CASE("decode(encode(s)) == s for 1000 random byte strings", "[bpe]") {
  const BpeTokenizer tok = small_tokenizer({"<|endoftext|>"});
  REQUIRE(tok.vocab_size() == 701);
  std::mt19937_64 rng(42);
  size_t bytes = 0, tokens = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string s = random_bytes(rng);
    if (i % 10 == 0) s += "<|endoftext|>" + random_bytes(rng);
    const auto ids = tok.encode(s);
    REQUIRE(tok.decode(ids) == s);
    REQUIRE(tok.decode(tok.encode(s, /*allow_special=*/true)) == s);
    if (i % 4 == 0) REQUIRE(ids == naive_encode(tok, s));  // merges by rank == merges replayed in order
    bytes += s.size();
    tokens += ids.size();
  }
  CHECK(tokens < bytes);
}

TEST_CASE("special tokens are encoded only when allowed", "[bpe]") {
  const BpeTokenizer tok = small_tokenizer({"<|endoftext|>", "<|end|>"});
  const int32_t eot = tok.special_token_id("<|endoftext|>");
  const int32_t end = tok.special_token_id("<|end|>");
  CHECK(eot == tok.vocab_size() - 2);
  CHECK(end == tok.vocab_size() - 1);
  CHECK(tok.token_bytes(eot) == "<|endoftext|>");
  const std::string text = "the cat<|endoftext|>the hat<|end|>";
  const auto plain = tok.encode(text);
  CHECK(std::find(plain.begin(), plain.end(), eot) == plain.end());
  const auto special = tok.encode(text, true);
  CHECK(std::count(special.begin(), special.end(), eot) == 1);
  CHECK(std::count(special.begin(), special.end(), end) == 1);
  CHECK(special.back() == end);
  CHECK(tok.decode(special) == text);
  CHECK(tok.encode("<|endoftext|><|endoftext|>", true) == std::vector<int32_t>{eot, eot});
  CHECK_THROWS_WITH(tok.special_token_id("<|pad|>"), Contains("<|pad|>"));
}

TEST_CASE("encode is safe to call from several threads at once", "[bpe]") {
  const BpeTokenizer tok = small_tokenizer();
  std::mt19937_64 rng(11);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back(random_bytes(rng));
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(naive_encode(tok, t));
  const BpeTokenizer copy = tok;  // copies share the chunk cache
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      const BpeTokenizer& mine = t % 2 ? copy : tok;
      for (size_t i = 0; i < texts.size(); ++i)
        if (mine.encode(texts[(i + 97 * t) % texts.size()]) != expected[(i + 97 * t) % texts.size()]) ++mismatches[t];
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("decode and token_bytes reject ids out of range", "[bpe]") {
  const BpeTokenizer tok;
  CHECK(tok.vocab_size() == 256);
  CHECK(tok.decode({104, 105}) == "hi");
  CHECK_THROWS_WITH(tok.decode({104, 256}), Contains("id 256") && Contains("position 1") && Contains("[0, 256)"));
  CHECK_THROWS_WITH(tok.decode({-1}), Contains("id -1") && Contains("position 0"));
  CHECK_THROWS_WITH(tok.token_bytes(300), Contains("id 300"));
}

TEST_CASE("training merges the most frequent pair, lowest ids on a tie", "[bpe]") {
  BpeTrainOptions once;
  once.min_pair_count = 1;
  // "abcd": ab, bc, cd all occur once -> (a, b) first; then (c, d) beats (ab, c).
  const auto tok = BpeTokenizer::train({"abcd"}, 259, once);
  REQUIRE(tok.num_merges() == 3);
  CHECK(tok.merges()[0] == std::pair<int32_t, int32_t>{'a', 'b'});
  CHECK(tok.merges()[1] == std::pair<int32_t, int32_t>{'c', 'd'});
  CHECK(tok.merges()[2] == std::pair<int32_t, int32_t>{256, 257});
  CHECK(tok.token_bytes(258) == "abcd");
  // Weighted by chunk frequency: "xy" three times beats "ab" twice.
  const auto counted = BpeTokenizer::train({"ab", "ab", "xy", "xy", "xy"}, 257);
  CHECK(counted.token_bytes(256) == "xy");
  // No pair crosses a chunk: "a b" has no (a, ' ') merge even with min_pair_count 1.
  const auto apart = BpeTokenizer::train({"a b"}, 300, once);
  REQUIRE(apart.num_merges() == 1);
  CHECK(apart.token_bytes(256) == " b");
  // Stops early (vocab below the request) when no pair reaches min_pair_count.
  CHECK(BpeTokenizer::train({"abcd"}, 1000).vocab_size() == 256);
  CHECK_THROWS_WITH(BpeTokenizer::train({"x"}, 200), Contains("vocab_size 200"));
  BpeTrainOptions bad;
  bad.special_tokens = {"<a>", "<a>"};
  CHECK_THROWS_WITH(BpeTokenizer::train({"x"}, 300, bad), Contains("special_tokens[1]") && Contains("duplicates"));
}

TEST_CASE("training is deterministic and independent of text order", "[bpe]") {
  std::mt19937_64 rng(9);
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back(random_bytes(rng));
  const auto a = BpeTokenizer::train(texts, 800);
  const auto b = BpeTokenizer::train(texts, 800);
  std::reverse(texts.begin(), texts.end());
  const auto c = BpeTokenizer::train(texts, 800);
  REQUIRE(a.num_merges() > 100);
  CHECK(a.merges() == b.merges());
  CHECK(a.merges() == c.merges());
}

TEST_CASE("save and load round trip", "[bpe]") {
  const BpeTokenizer tok = small_tokenizer({"<|endoftext|>"});
  const std::string path = temp_file("tok.json");
  tok.save(path);
  const BpeTokenizer loaded = BpeTokenizer::load(path);
  std::filesystem::remove(path);
  CHECK(loaded == tok);
  CHECK(loaded.vocab_size() == tok.vocab_size());
  CHECK(loaded.special_tokens() == tok.special_tokens());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 50; ++i) {
    const std::string s = random_bytes(rng);
    CHECK(loaded.encode(s) == tok.encode(s));
  }
  for (int id = 0; id < tok.vocab_size(); ++id) REQUIRE(loaded.token_bytes(id) == tok.token_bytes(id));

  const BpeTokenizer empty;
  empty.save(path);
  CHECK(BpeTokenizer::load(path) == empty);
  std::filesystem::remove(path);
}

TEST_CASE("load rejects malformed tokenizer files, naming the file and field", "[bpe]") {
  const std::string path = temp_file("bad.json");
  auto fails_with = [&](const std::string& body, const std::string& what) {
    write_file(path, body);
    INFO(body);
    CHECK_THROWS_AS(BpeTokenizer::load(path), loom::Error);
    CHECK_THROWS_WITH(BpeTokenizer::load(path), Contains(path) && Contains(what));
  };
  auto file = [](const std::string& format, const std::string& version, const std::string& size,
                 const std::string& merges, const std::string& specials = "[]") {
    return "{\"format\": " + format + ", \"version\": " + version +
           ", \"pretokenizer\": \"loom-bytes-classes-v1\", \"vocab_size\": " + size + ", \"special_tokens\": " +
           specials + ", \"merges\": " + merges + "}";
  };
  write_file(path, file("\"loom-bpe\"", "1", "258", "[[97, 98], [256, 99]]"));
  CHECK(BpeTokenizer::load(path).token_bytes(257) == "abc");  // the baseline is valid

  fails_with("{\"format\": ", "not valid JSON");
  fails_with("[1, 2]", "JSON object");
  fails_with(file("\"tiktoken\"", "1", "256", "[]"), "'format'");
  fails_with("{\"version\": 1}", "field 'format' is missing");
  fails_with(file("\"loom-bpe\"", "2", "256", "[]"), "field 'version' is 2");
  fails_with(file("\"loom-bpe\"", "1", "257", "[[97, 257]]"), "merges[0] = [97, 257] refers to id 257");
  fails_with(file("\"loom-bpe\"", "1", "258", "[[97, 98], [97, 98]]"), "merges[1] = [97, 98] duplicates merges[0]");
  fails_with(file("\"loom-bpe\"", "1", "257", "[[97]]"), "merges[0] is [97]");
  fails_with(file("\"loom-bpe\"", "1", "257", "[[97, \"b\"]]"), "merges[0]");
  fails_with(file("\"loom-bpe\"", "1", "300", "[[97, 98]]"), "field 'vocab_size' is 300");
  fails_with(file("\"loom-bpe\"", "1", "258", "[]", "[\"<e>\", \"<e>\"]"), "special_tokens[1]");
  fails_with(file("\"loom-bpe\"", "1", "257", "[]", "[7]"), "special_tokens[0] is 7");
  std::string other = file("\"loom-bpe\"", "1", "256", "[]");
  other.replace(other.find("loom-bytes-classes-v1"), 21, "gpt2");
  fails_with(other, "field 'pretokenizer'");
  std::filesystem::remove(path);
  CHECK_THROWS_WITH(BpeTokenizer::load(path), Contains(path) && Contains("cannot open"));
}

TEST_CASE("a 4096-token BPE on the poetry corpus compresses held-out Chinese and English", "[bpe][corpus]") {
  // The fortune files come from scripts/install-deps.sh; a missing one fails
  // here with the package to install.
  const TextCorpus corpus = load_corpus(default_poetry_corpus_files());
  const TextSplit split = split_records(corpus.records, 0.1, 0);
  std::vector<std::string> train;
  for (const auto& r : split.train) train.push_back(r.text);

  const auto start = std::chrono::steady_clock::now();
  BpeTrainOptions options;
  options.special_tokens = {"<|endoftext|>"};
  const BpeTokenizer tok = BpeTokenizer::train(train, 4096, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(tok.vocab_size() == 4096);

  const std::string tang = require_fortune_file("tang300"), song = require_fortune_file("song100");
  size_t zh_bytes = 0, zh_tokens = 0, en_bytes = 0, en_tokens = 0;
  for (const auto& r : split.val) {
    const auto ids = tok.encode(r.text);
    REQUIRE(tok.decode(ids) == r.text);
    const bool chinese = r.source == tang || r.source == song;
    (chinese ? zh_bytes : en_bytes) += r.text.size();
    (chinese ? zh_tokens : en_tokens) += ids.size();
  }
  REQUIRE(zh_bytes > 5000);
  REQUIRE(en_bytes > 20000);
  const double zh = static_cast<double>(zh_tokens) / zh_bytes, en = static_cast<double>(en_tokens) / en_bytes;
  WARN("BPE 4096 on " << corpus.bytes() << " bytes of poetry: trained in " << seconds << " s; held-out tokens/byte: "
                      << "Chinese " << zh << " (" << zh_bytes << " bytes), English " << en << " (" << en_bytes
                      << " bytes)");
  CHECK(zh < 0.6);
  CHECK(en < 0.5);

  // Whole files, colour codes and all, and the 2 MB chinese file round-trip.
  for (const auto& file : {tang, song, require_fortune_file("chinese"), require_fortune_file("songs-poems")}) {
    const std::string bytes = read_bytes(file);
    INFO(file);
    REQUIRE(bytes.size() > 10000);
    REQUIRE(tok.decode(tok.encode(bytes)) == bytes);
  }
}

TEST_CASE("training on a real corpus file is deterministic", "[bpe][corpus]") {
  const auto records = read_fortunes(require_fortune_file("tang300"));
  const auto a = BpeTokenizer::train(records, 1024);
  const auto b = BpeTokenizer::train(records, 1024);
  CHECK(a.vocab_size() == 1024);
  CHECK(a.merges() == b.merges());
  // The first merges build the CJK characters out of their UTF-8 bytes.
  CHECK(static_cast<unsigned char>(a.token_bytes(256)[0]) >= 0x80);
}
