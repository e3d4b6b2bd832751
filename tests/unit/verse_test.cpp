// VerseForm: the metre constraint loom-generate --verse samples under.
#include <catch2/catch.hpp>

#include <loom/core/error.hpp>
#include <loom/models/verse.hpp>
#include <random>
#include <string>
#include <vector>

using loom::models::VerseForm;
using Catch::Contains;

namespace {

// The UTF-8 characters of s.
std::vector<std::string> characters(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

TEST_CASE("a verse form takes its clause length from the prompt", "[verse]") {
  CHECK(VerseForm::from_prompt("春眠不觉晓，").chars_per_clause == 5);
  CHECK(VerseForm::from_prompt("朝辞白帝彩云间，").chars_per_clause == 7);
  CHECK(VerseForm::from_prompt("《春晓》\n春眠不觉晓，处处闻啼鸟。\n", 8).chars_per_clause == 5);
  CHECK(VerseForm::from_prompt("春眠不觉晓，", 8).clauses == 8);
  CHECK_THROWS_WITH(VerseForm::from_prompt("春眠不觉晓"), Contains("春眠不觉晓") && Contains("must end with a clause"));
  CHECK_THROWS_WITH(VerseForm::from_prompt("hello, world."), Contains("must end with a clause"));
  CHECK_THROWS_WITH(VerseForm::from_prompt("春眠，"), Contains("2 Han characters"));
  CHECK_THROWS_WITH(VerseForm::from_prompt("春眠不觉晓，", 1), Contains("at least 2 clauses"));
}

TEST_CASE("a verse form accepts a real quatrain character by character, and its end only at the end", "[verse]") {
  const VerseForm form = VerseForm::from_prompt("春眠不觉晓，");
  std::string text = "春眠不觉晓，";
  for (const auto& ch : characters("处处闻啼鸟。\n夜来风雨声，花落知多少。")) {
    INFO(text << " + " << ch);
    CHECK_FALSE(form.allows(text, "", true));
    REQUIRE(form.allows(text, ch, false));
    text += ch;
  }
  CHECK(form.allows(text, "", true));
  CHECK_FALSE(form.allows(text, "\n", false));  // four clauses: nothing but the end
  CHECK_FALSE(form.allows(text, "春", false));
}

TEST_CASE("a verse form refuses what breaks the metre", "[verse]") {
  const VerseForm form = VerseForm::from_prompt("春眠不觉晓，");
  CHECK_FALSE(form.allows("春眠不觉晓，处处闻啼鸟", "啼", false));      // a sixth character
  CHECK_FALSE(form.allows("春眠不觉晓，处处闻啼鸟", "，", false));      // the second clause closes with 。
  CHECK_FALSE(form.allows("春眠不觉晓，处处闻啼", "。", false));        // too early
  CHECK_FALSE(form.allows("春眠不觉晓，处处", "闻啼", false));          // one character per token
  CHECK_FALSE(form.allows("春眠不觉晓，处处", "a", false));
  CHECK_FALSE(form.allows("春眠不觉晓，处处", "\xE9", false));          // a fragment of a character
  CHECK_FALSE(form.allows("春眠不觉晓，", "\n", false));                // a line breaks after 。 only
  CHECK_FALSE(form.allows("春眠不觉晓，处处闻啼鸟。\n", "\n", false));  // once
  CHECK(form.allows("春眠不觉晓，处处闻啼鸟。", "夜", false));           // the break is optional
  CHECK_FALSE(form.allows("春眠不觉晓，处处闻啼鸟。", "", true));        // two clauses of four
}

TEST_CASE("sampling any pieces under a verse form gives clauses of exactly N characters", "[verse]") {
  const std::vector<std::string> pieces = {"春", "山", "月", "，", "。", "\n", "a", "山月", " ", "！", "《"};
  std::mt19937 rng(7);
  for (const int clauses : {4, 8}) {
    for (int trial = 0; trial < 50; ++trial) {
      const std::string prompt = trial % 2 ? "朝辞白帝彩云间，" : "春眠不觉晓，";
      const VerseForm form = VerseForm::from_prompt(prompt, clauses);
      std::string text = prompt;
      int steps = 0;
      while (!form.allows(text, "", true)) {
        std::vector<std::string> allowed;
        for (const auto& p : pieces)
          if (form.allows(text, p, false)) allowed.push_back(p);
        REQUIRE(!allowed.empty());
        text += allowed[rng() % allowed.size()];
        REQUIRE(++steps < 200);
      }
      // every clause has N Han characters, and the marks alternate ，。
      int n = 0, closed = 0;
      for (const auto& ch : characters(text)) {
        if (ch == "，" || ch == "。") {
          CHECK(n == form.chars_per_clause);
          CHECK((ch == "，") == (closed % 2 == 0));
          ++closed;
          n = 0;
        } else if (ch != "\n") {
          ++n;
        }
      }
      CHECK(closed == clauses);
      CHECK(n == 0);
    }
  }
}
