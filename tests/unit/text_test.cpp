// Fortune files into records (ANSI colours, % separators, CRLF, overstrike),
// UTF-8 validation with offsets, the hash-based split and the real corpus.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <unistd.h>

#include <loom/core/error.hpp>
#include <loom/data/text.hpp>

using namespace loom::data;
using Catch::Contains;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("loom_text_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const auto file = (path / name).string();
    std::ofstream(file, std::ios::binary) << bytes;
    return file;
  }
};

}  // namespace

TEST_CASE("read_fortunes splits at % lines, strips ANSI colours and CRLF, trims", "[text]") {
  TempDir dir;
  const std::string file = dir.write(
      "poems.u8",
      "\x1b[32m\xE3\x80\x8A\xE9\xA2\x98\xE3\x80\x8B\x1b[m\r\n"  // 《题》 in green
      "\x1b[33;1m\xE4\xBD\x9C\xE8\x80\x85\x1b[m\r\n"              // 作者 in bold yellow
      "\xE6\x98\xA5\xE7\x9C\xA0\xEF\xBC\x8C   \r\n"               // 春眠， with trailing spaces
      "%\r\n"
      "\r\n"
      "   Second record\twith tab \t\n"
      "  indented line\n"
      "\n"
      "%\n"
      "%\n"
      "\x1b[1;33mlast\x1b[;\x1b[34m word\x1b[m\n");
  const auto records = read_fortunes(file);
  REQUIRE(records.size() == 3);
  CHECK(records[0] == "\xE3\x80\x8A\xE9\xA2\x98\xE3\x80\x8B\n\xE4\xBD\x9C\xE8\x80\x85\n\xE6\x98\xA5\xE7\x9C\xA0\xEF\xBC\x8C");
  CHECK(records[1] == "   Second record\twith tab\n  indented line");  // first-line indentation is kept
  CHECK(records[2] == "last word");                                     // an interrupted CSI is dropped too
}

TEST_CASE("read_fortunes renders backspace overstrike and drops control bytes", "[text]") {
  TempDir dir;
  const auto records = read_fortunes(dir.write("ctl.u8",
                                               "\xEF\xBB\xBFm'\biriel\n%\n___\b\b\bone two\n%\n_\bX and Y\b_\n%\n"
                                               "bell\a!\x1b(B\x7f\n%\n\xE6\x98\xA5\b!\n%\nlone\rcr"));
  REQUIRE(records.size() == 6);
  CHECK(records[0] == "miriel");  // the BOM is skipped
  CHECK(records[1] == "one two");
  CHECK(records[2] == "X and Y");
  CHECK(records[3] == "bell!(B");
  CHECK(records[4] == "\xE6\x98\xA5!");  // a backspace never splits a multi-byte character
  CHECK(records[5] == "lone\ncr");
  CHECK(clean_terminal_text("a\r\nb\x1b[0;31mc\x1b[") == "a\nbc");
}

TEST_CASE("utf8_invalid_offset finds the first malformed sequence", "[text]") {
  const auto npos = std::string_view::npos;
  CHECK(utf8_invalid_offset("") == npos);
  CHECK(utf8_invalid_offset("plain ascii\n") == npos);
  CHECK(utf8_invalid_offset("\xE6\x98\xA5\xC3\xA9") == npos);              // 春 é
  CHECK(utf8_invalid_offset("\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF") == npos);  // U+1F600, U+10FFFF
  CHECK(utf8_invalid_offset(std::string_view("a\0b", 3)) == npos);          // NUL is valid UTF-8
  CHECK(utf8_invalid_offset("ab\xFF") == 2);                                // never a lead byte
  CHECK(utf8_invalid_offset("a\x80") == 1);                                 // stray continuation
  CHECK(utf8_invalid_offset("ab\xC0\xAF") == 2);                            // overlong '/'
  CHECK(utf8_invalid_offset("\xE0\x80\xAF") == 0);                          // overlong 3-byte
  CHECK(utf8_invalid_offset("x\xED\xA0\x80") == 1);                         // surrogate U+D800
  CHECK(utf8_invalid_offset("\xF4\x90\x80\x80") == 0);                      // above U+10FFFF
  CHECK(utf8_invalid_offset("ok\xE6\x98") == 2);                            // truncated at the end
  CHECK(utf8_invalid_offset("ok\xE6" "a\xA5") == 2);                        // continuation missing
}

TEST_CASE("read_fortunes reports invalid UTF-8 with file, offset and line", "[text]") {
  TempDir dir;
  const std::string file = dir.write("bad.u8", "good\n%\nab\xFF cd\n");
  CHECK_THROWS_AS(read_fortunes(file), loom::Error);
  CHECK_THROWS_WITH(read_fortunes(file), Contains(file) && Contains("byte offset 9") && Contains("line 3") &&
                                             Contains("0xff") && Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(read_fortunes((dir.path / "absent.u8").string()), Contains("absent.u8") && Contains("cannot open"));
  CHECK_THROWS_WITH(read_fortunes(dir.path.string()), Contains("is a directory"));
}

TEST_CASE("split_records is deterministic, order-free and keeps duplicates together", "[text]") {
  std::vector<TextRecord> records;
  for (int i = 0; i < 5000; ++i) records.push_back({"record number " + std::to_string(i), i % 2 ? "a.u8" : "b.u8"});
  records.push_back({"a duplicated record", "a.u8"});
  records.push_back({"a duplicated record", "b.u8"});

  const auto first = split_records(records, 0.1, 7);
  const auto again = split_records(records, 0.1, 7);
  REQUIRE(first.val.size() == again.val.size());
  for (size_t i = 0; i < first.val.size(); ++i) CHECK(first.val[i].text == again.val[i].text);
  CHECK(first.train.size() + first.val.size() == records.size());
  const double fraction = static_cast<double>(first.val.size()) / records.size();
  CHECK(fraction > 0.08);
  CHECK(fraction < 0.12);

  auto texts = [](const std::vector<TextRecord>& rs) {
    std::multiset<std::string> s;
    for (const auto& r : rs) s.insert(r.text);
    return s;
  };
  auto reversed = records;
  std::reverse(reversed.begin(), reversed.end());
  CHECK(texts(split_records(reversed, 0.1, 7).val) == texts(first.val));  // file order does not matter
  const auto dup_in_val = texts(first.val).count("a duplicated record");
  CHECK((dup_in_val == 0 || dup_in_val == 2));
  CHECK(texts(split_records(records, 0.1, 8).val) != texts(first.val));  // the seed does

  CHECK(split_records(records, 0.0, 7).val.empty());
  CHECK(split_records(records, 1.0, 7).train.empty());
  CHECK_THROWS_WITH(split_records(records, 1.5, 7), Contains("val_fraction") && Contains("1.5"));
}

TEST_CASE("missing fortune files name the Debian package", "[text]") {
  TempDir dir;
  CHECK(fortune_package("tang300.u8") == "fortunes-zh");
  CHECK(fortune_package("riddles") == "fortunes-min");
  CHECK(fortune_package("songs-poems") == "fortunes");
  CHECK_THROWS_WITH(require_fortune_file("song100", dir.path.string()),
                    Contains("song100.u8") && Contains("fortunes-zh") && Contains("install-deps.sh"));
  CHECK_THROWS_WITH(default_poetry_corpus_files(dir.path.string()), Contains("tang300.u8") && Contains("fortunes-zh"));
}

TEST_CASE("the default poetry corpus loads as clean UTF-8 records tagged by file", "[text][corpus]") {
  // Installed by scripts/install-deps.sh; a missing file fails here naming its package.
  const auto files = default_poetry_corpus_files();
  const TextCorpus corpus = load_corpus(files);
  CHECK(corpus.files == files);
  std::map<std::string, size_t> per_file;
  for (const auto& r : corpus.records) {
    ++per_file[r.source];
    REQUIRE(!r.text.empty());
    REQUIRE(utf8_invalid_offset(r.text) == std::string_view::npos);
    REQUIRE(std::none_of(r.text.begin(), r.text.end(), [](char c) {
      return (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') || c == 0x7F;
    }));
  }
  CHECK(per_file.size() == files.size());
  CHECK(per_file[require_fortune_file("tang300")] == 313);
  CHECK(per_file[require_fortune_file("song100")] == 95);
  CHECK(corpus.bytes() > 400000);
  // tang300 records start with the title line 《...》 once the colour codes are gone.
  const auto tang = read_fortunes(require_fortune_file("tang300"));
  CHECK(tang[0].rfind("\xE3\x80\x8A", 0) == 0);
  INFO("poetry corpus: " << corpus.records.size() << " records, " << corpus.bytes() << " bytes");
  CHECK(corpus.records.size() > 2000);
}
