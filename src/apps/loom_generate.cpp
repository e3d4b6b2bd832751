// loom-generate RUN_OR_CHECKPOINT --prompt TEXT [--temperature T] [--top-k K] [--max-tokens N] [--seed S]
//
// Samples a continuation from a trained GPT run (its config.json, tokenizer.json
// and newest checkpoint, or the checkpoint directory given).
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli.hpp"
#include "loom/data/bpe.hpp"
#include "loom/data/text.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/models/gpt.hpp"
#include "loom/train/recipe.hpp"

namespace fs = std::filesystem;

namespace {

// True when `bytes` is valid UTF-8, or (unless `complete`) valid UTF-8
// followed by the beginning of one more character.
bool valid_utf8_prefix(const std::string& bytes, bool complete) {
  const size_t bad = loom::data::utf8_invalid_offset(bytes);
  if (bad == std::string::npos) return true;
  if (complete) return false;
  const auto lead = static_cast<unsigned char>(bytes[bad]);
  const size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0;
  if (need == 0 || bytes.size() - bad >= need) return false;
  for (size_t i = bad + 1; i < bytes.size(); ++i)
    if ((static_cast<unsigned char>(bytes[i]) & 0xC0) != 0x80) return false;
  return true;
}

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
    // Byte-level tokens can split a character: only sample tokens that keep
    // the output a valid UTF-8 prefix (the end-of-text token ends it).
    s.allow = [&](const std::vector<int32_t>& so_far, int32_t id) {
      if (id == s.stop_token) return valid_utf8_prefix(tokenizer.decode(so_far), true);
      if (id >= tokenizer.vocab_size() || id > s.stop_token) return false;
      return valid_utf8_prefix(tokenizer.decode(so_far) + tokenizer.token_bytes(id), false);
    };
    auto ids = tokenizer.encode(prompt);
    LOOM_CHECK(!ids.empty(), "--prompt is empty");
    loom::Generator gen(seed);
    auto out = model.generate(ids, s, gen);
    if (!out.empty() && out.back() == s.stop_token) out.pop_back();
    std::printf("%s\n", tokenizer.decode(out).c_str());
    return 0;
  });
}
