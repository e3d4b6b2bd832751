// loom-eval RUN_DIR|CHECKPOINT_DIR [--set KEY.PATH=VALUE]... [--out FILE] [--examples DIR]
//
// Evaluates a trained run (its newest checkpoint, or the one given) with the
// recipe it was trained with, and writes eval.json: {"metrics", "chance", "n"}.
#include <cstdio>
#include <cstring>

#include "cli.hpp"
#include "eval_examples.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/train/trainer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-eval RUN_DIR|CHECKPOINT_DIR [--set KEY.PATH=VALUE]... [--out FILE] [--examples DIR]\n"
    "  --set  override an evaluation setting, e.g. --set eval.decode_limit=200 (the model section is fixed)\n"
    "  --out  where to write the JSON (default: RUN_DIR/eval.json)\n"
    "  --examples  also write pictures of example scenes, speech and videos with what the model said (omni models)\n";

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-eval", [&] {
    std::string target, out, examples;
    std::vector<std::string> overrides;
    for (int i = 1; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (!std::strcmp(a, "--set")) {
        overrides.push_back(loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--out")) {
        out = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--examples")) {
        examples = loom::cli::take_value(argc, argv, i);
      } else if (a[0] == '-') {
        throw loom::cli::UsageError{std::string("unknown option '") + a + "'\n" + kUsage};
      } else if (target.empty()) {
        target = a;
      } else {
        throw loom::cli::UsageError{std::string("more than one run given ('") + a + "')\n" + kUsage};
      }
    }
    if (target.empty()) throw loom::cli::UsageError{std::string("no run directory given\n") + kUsage};
    const auto eval = loom::train::evaluate_run(target, overrides, out);
    std::printf("%s\n", eval.dump(2).c_str());
    if (!examples.empty()) {
      const std::string run = loom::io::run_of_checkpoint(eval["checkpoint"].get<std::string>());
      const auto config = loom::train::read_recipe(run + "/config.json");
      loom::apps::write_eval_examples(config, eval, examples);
      std::fprintf(stderr, "loom-eval: wrote %s/{scenes,speech,video}.png and examples.md\n", examples.c_str());
    }
    return 0;
  });
}
