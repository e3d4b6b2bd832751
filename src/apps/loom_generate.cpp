// loom-generate RUN_OR_CHECKPOINT --prompt TEXT [--temperature T] [--top-k K] [--max-tokens N] [--seed S]
//
// Samples a continuation from a trained GPT run (its config.json, tokenizer.json
// and newest checkpoint, or the checkpoint directory given).
#include <cstdio>
#include <cstring>

#include "cli.hpp"
#include "gpt_run.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-generate RUN_DIR|CHECKPOINT_DIR --prompt TEXT [--temperature 0.8] [--top-k 40] [--max-tokens 64] "
    "[--seed 0]\n";

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-generate", [&] {
    std::string where, prompt;
    loom::models::SamplingOptions s;
    s.temperature = 0.8;
    s.top_k = 40;
    uint64_t seed = 0;
    bool have_prompt = false;
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
    std::printf("%s\n", run.continue_text(prompt, s, seed).text.c_str());
    return 0;
  });
}
