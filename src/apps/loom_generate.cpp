// loom-generate RUN_OR_CHECKPOINT --prompt TEXT [--temperature T] [--top-k K] [--max-tokens N] [--seed S]
//
// Samples a continuation from a trained GPT run (its config.json, tokenizer.json
// and newest checkpoint, or the checkpoint directory given).
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli.hpp"
#include "loom/data/bpe.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/models/gpt.hpp"
#include "loom/train/recipe.hpp"

namespace fs = std::filesystem;

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

    const bool is_checkpoint = fs::exists(fs::path(where) / loom::io::kCheckpointManifest);
    std::string checkpoint = where, run = where;
    if (is_checkpoint) {
      run = fs::path(where).lexically_normal().parent_path().parent_path().string();
    } else {
      const auto list = loom::io::list_checkpoints(where);
      LOOM_CHECK(!list.empty(), "no checkpoints under '", where, "/checkpoints'");
      checkpoint = list.back();
    }
    const auto config = loom::train::read_recipe((fs::path(run) / "config.json").string());
    LOOM_CHECK(config["model"]["kind"] == "gpt", "'", run, "' is not a GPT run (model.kind ",
               config["model"]["kind"].dump(), ")");
    const auto tokenizer = loom::data::BpeTokenizer::load((fs::path(run) / "tokenizer.json").string());
    loom::models::GPT model(loom::models::GPTConfig::from_json(config["model"]));
    model.load_state_dict(loom::io::load_checkpoint(checkpoint).weights);
    s.stop_token = tokenizer.special_token_id("<|endoftext|>");
    auto ids = tokenizer.encode(prompt);
    LOOM_CHECK(!ids.empty(), "--prompt is empty");
    loom::Generator gen(seed);
    auto out = model.generate(ids, s, gen);
    if (!out.empty() && out.back() == s.stop_token) out.pop_back();
    std::printf("%s\n", tokenizer.decode(out).c_str());
    return 0;
  });
}
