// loom-generate RUN_OR_CHECKPOINT --prompt TEXT [--temperature T] [--top-k K] [--max-tokens N] [--seed S]
//               [--verse [--clauses 4]]
//
// Samples a continuation from a trained GPT run (its config.json, tokenizer.json
// and newest checkpoint, or the checkpoint directory given). --verse keeps
// the metre the prompt opens (loom/models/verse.hpp): "春眠不觉晓，" gives a
// five-character poem of --clauses clauses.
#include <cstdio>
#include <cstring>

#include "cli.hpp"
#include "gpt_run.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-generate RUN_DIR|CHECKPOINT_DIR --prompt TEXT [--temperature 0.8] [--top-k 40] [--max-tokens 64] "
    "[--seed 0] [--verse [--clauses 4]]\n"
    "  --verse  continue a Chinese poem in the metre of the prompt's last clause (5 or 7 characters)\n";

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-generate", [&] {
    std::string where, prompt;
    loom::models::SamplingOptions s;
    s.temperature = 0.8;
    s.top_k = 40;
    uint64_t seed = 0;
    bool have_prompt = false, verse = false, have_max_tokens = false, have_clauses = false;
    int clauses = 4;
    for (int i = 1; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (!std::strcmp(a, "--prompt")) {
        prompt = loom::cli::take_value(argc, argv, i);
        have_prompt = true;
      } else if (!std::strcmp(a, "--temperature")) {
        s.temperature = std::stod(loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--top-k")) {
        s.top_k = std::stoll(loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--max-tokens")) {
        s.max_tokens = std::stoll(loom::cli::take_value(argc, argv, i));
        have_max_tokens = true;
      } else if (!std::strcmp(a, "--verse")) {
        verse = true;
      } else if (!std::strcmp(a, "--clauses")) {
        clauses = std::stoi(loom::cli::take_value(argc, argv, i));
        have_clauses = true;
      } else if (!std::strcmp(a, "--seed")) {
        seed = std::stoull(loom::cli::take_value(argc, argv, i));
      } else if (a[0] == '-') {
        throw loom::cli::UsageError{std::string("unknown option '") + a + "'\n" + kUsage};
      } else {
        where = a;
      }
    }
    if (where.empty() || !have_prompt) throw loom::cli::UsageError{std::string("a run and --prompt are required\n") + kUsage};

    loom::apps::GptRun run(where);
    if (have_clauses && !verse) throw loom::cli::UsageError{std::string("--clauses needs --verse\n") + kUsage};
    std::optional<loom::models::VerseForm> form;
    if (verse) {
      form = loom::models::VerseForm::from_prompt(prompt, clauses);
      // room for every clause, its mark and a line break, unless told otherwise
      if (!have_max_tokens) s.max_tokens = static_cast<int64_t>(form->chars_per_clause + 2) * clauses + 1;
    }
    std::printf("%s\n", run.continue_text(prompt, s, seed, form).text.c_str());
    return 0;
  });
}
