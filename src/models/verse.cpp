// Metre-constrained sampling for Chinese regulated verse (see loom/models/verse.hpp).
#include "loom/models/verse.hpp"

#include <cstdint>
#include <string>

#include "loom/core/error.hpp"

namespace loom::models {

namespace {

constexpr std::string_view kComma = "\xEF\xBC\x8C";   // ，
constexpr std::string_view kPeriod = "\xE3\x80\x82";  // 。
constexpr std::string_view kClauseMarks[] = {kComma, kPeriod, "\xEF\xBC\x81", "\xEF\xBC\x9F", "\xEF\xBC\x9B"};  // ，。！？；

// The code point of the UTF-8 character at s[i] and its length; length 0 when malformed.
std::pair<uint32_t, size_t> code_point_at(std::string_view s, size_t i) {
  const auto b = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const auto cont = [&](size_t j) { return j < s.size() && (b(j) & 0xC0) == 0x80; };
  const unsigned char lead = b(i);
  if (lead < 0x80) return {lead, 1};
  if ((lead & 0xE0) == 0xC0 && cont(i + 1)) return {(uint32_t{lead & 0x1Fu} << 6) | (b(i + 1) & 0x3Fu), 2};
  if ((lead & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2))
    return {(uint32_t{lead & 0x0Fu} << 12) | (uint32_t{b(i + 1) & 0x3Fu} << 6) | (b(i + 2) & 0x3Fu), 3};
  if ((lead & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3))
    return {(uint32_t{lead & 0x07u} << 18) | (uint32_t{b(i + 1) & 0x3Fu} << 12) | (uint32_t{b(i + 2) & 0x3Fu} << 6) |
                (b(i + 3) & 0x3Fu),
            4};
  return {0, 0};
}

bool is_han(uint32_t cp) { return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF); }

// Where a text stands in the form: Han characters in the open clause, the
// clauses closed so far, whether the last clause closed with '。', and
// whether that '。' is the last character.
struct VerseState {
  int open_chars = 0;
  int closed = 0;
  bool period_closed = false;
  bool after_period = false;
};

VerseState state_of(std::string_view text) {
  VerseState s;
  size_t i = 0;
  while (i < text.size()) {
    const auto [cp, len] = code_point_at(text, i);
    if (len == 0) {  // a malformed byte neither counts nor closes
      ++i;
      continue;
    }
    const std::string_view ch = text.substr(i, len);
    bool mark = false;
    for (const auto m : kClauseMarks) mark = mark || ch == m;
    if (mark) {
      if (s.open_chars > 0) ++s.closed;
      s.open_chars = 0;
      s.period_closed = s.after_period = ch == kPeriod;
    } else if (is_han(cp)) {
      ++s.open_chars;
      s.after_period = false;
    } else if (cp == '\n') {
      s.open_chars = 0;  // a title or an attribution line does not count
      s.after_period = false;
    } else {
      s.after_period = false;
    }
    i += len;
  }
  return s;
}

}  // namespace

VerseForm VerseForm::from_prompt(std::string_view prompt, int clauses) {
  LOOM_CHECK(clauses >= 2, "verse form: a poem needs at least 2 clauses, got ", clauses);
  // Strip the closing mark, then count the Han characters back to the previous mark or line.
  std::string_view body = prompt;
  while (!body.empty() && (body.back() == ' ' || body.back() == '\n')) body.remove_suffix(1);
  bool closed = false;
  for (const auto m : {kComma, kPeriod})
    if (body.size() >= m.size() && body.substr(body.size() - m.size()) == m) {
      body.remove_suffix(m.size());
      closed = true;
      break;
    }
  LOOM_CHECK(closed, "verse form: the prompt '", std::string(prompt),
             "' must end with a clause closed by '，' or '。' (e.g. 春眠不觉晓，)");
  VerseForm form;
  form.chars_per_clause = state_of(body).open_chars;
  form.clauses = clauses;
  LOOM_CHECK(form.chars_per_clause >= 4 && form.chars_per_clause <= 9, "verse form: the prompt '", std::string(prompt),
             "' ends with a clause of ", form.chars_per_clause, " Han characters; regulated verse has 5 or 7");
  return form;
}

bool VerseForm::allows(std::string_view text, std::string_view piece, bool end_of_text) const {
  const VerseState s = state_of(text);
  if (end_of_text) return s.open_chars == 0 && s.period_closed && s.closed >= clauses;
  const auto [cp, len] = piece.empty() ? std::pair<uint32_t, size_t>{0, 0} : code_point_at(piece, 0);
  if (len == 0 || len != piece.size()) return false;  // one whole character per token
  if (s.closed >= clauses) return false;              // the poem is complete: only its end
  if (is_han(cp)) return s.open_chars < chars_per_clause;
  // the clause is full: odd clauses (1st, 3rd, ...) close with '，', even ones with '。'
  if (piece == kComma) return s.open_chars == chars_per_clause && s.closed % 2 == 0;
  if (piece == kPeriod) return s.open_chars == chars_per_clause && s.closed % 2 == 1;
  if (piece == "\n") return s.open_chars == 0 && s.after_period;
  return false;
}

}  // namespace loom::models
