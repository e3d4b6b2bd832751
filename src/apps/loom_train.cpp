// loom-train RECIPE.json [--set a.b.c=VALUE]... [--out DIR] [--resume DIR] [--quiet]
//
// Trains the recipe's model and writes DIR/config.json, DIR/metrics.jsonl,
// DIR/checkpoints/step-NNNNNNNN/ and DIR/eval.json.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli.hpp"
#include "loom/train/trainer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-train RECIPE.json [--set KEY.PATH=VALUE]... [--out DIR] [--resume DIR] [--quiet]\n"
    "  --set     override a recipe value, e.g. --set train.steps=200 --set optim.lr=3e-4\n"
    "  --out     run directory (default: runs/<recipe name>)\n"
    "  --resume  continue from the newest checkpoint of a run directory, or from one checkpoint directory\n"
    "  --quiet   no progress display\n";

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-train", [&] {
    std::string recipe_path, out, resume;
    std::vector<std::string> overrides;
    bool quiet = false;
    for (int i = 1; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (!std::strcmp(a, "--set")) {
        overrides.push_back(loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--out")) {
        out = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--resume")) {
        resume = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--quiet")) {
        quiet = true;
      } else if (a[0] == '-') {
        throw loom::cli::UsageError{std::string("unknown option '") + a + "'\n" + kUsage};
      } else if (recipe_path.empty()) {
        recipe_path = a;
      } else {
        throw loom::cli::UsageError{std::string("more than one recipe given ('") + a + "')\n" + kUsage};
      }
    }
    if (recipe_path.empty()) throw loom::cli::UsageError{std::string("no recipe given\n") + kUsage};
    if (out.empty()) out = "runs/" + std::filesystem::path(recipe_path).stem().string();
    const auto recipe = loom::train::load_resolved_recipe(recipe_path, overrides);
    const auto summary = loom::train::run_training(recipe, {out, resume, quiet});
    std::printf("%s: %lld steps, final loss %.4f, %lld skipped; eval %s\n", out.c_str(),
                static_cast<long long>(summary.steps), summary.final_loss,
                static_cast<long long>(summary.skipped_steps), summary.eval["metrics"].dump().c_str());
    return 0;
  });
}
