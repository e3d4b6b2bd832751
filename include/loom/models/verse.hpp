// Metre-constrained sampling for Chinese regulated verse.
//
// A five- or seven-character poem is a sequence of clauses of exactly N Han
// characters, the odd ones closed by '，' and the even ones by '。', a couplet
// per line: "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。". A small language
// model learns the vocabulary and the punctuation of verse long before it
// learns to count to five; this form lets the sampler count for it: only
// continuations that keep the form are sampled (the model still chooses
// every character). It works on the decoded text, so it suits any tokenizer
// whose tokens are whole characters (the BPE's cjk-chars pre-tokenizer).
#pragma once

#include <string_view>

namespace loom::models {

struct VerseForm {
  int chars_per_clause = 0;  // N: 5 or 7 for regulated verse (4..9 accepted)
  int clauses = 4;           // clauses in the whole poem, the prompt's included (4: a quatrain, 8: a regulated poem)

  // The form a prompt opens: N is the Han characters of the prompt's last
  // clause, which must end in '，' or '。' ("春眠不觉晓，" gives 5).
  // loom::Error naming the prompt when it does not end such a clause.
  static VerseForm from_prompt(std::string_view prompt, int clauses = 4);

  // Whether `text` (the prompt and what was sampled so far, UTF-8) may be
  // followed by `piece` (the bytes of one token), or by the end of the text
  // when `end_of_text`. Allowed pieces: one Han character while the clause is
  // short; '，' or '。' (alternating) when it is complete; '\n' after '。';
  // the end once `clauses` clauses are closed by '。'.
  bool allows(std::string_view text, std::string_view piece, bool end_of_text) const;
};

}  // namespace loom::models
