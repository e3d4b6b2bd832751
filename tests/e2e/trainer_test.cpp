// End-to-end checks of the trainer on test-sized recipes: exact resume,
// recipe validation, non-finite step handling, and both tasks' outputs.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <loom/data/bpe.hpp>
#include <loom/io/checkpoint.hpp>
#include <loom/loom.hpp>
#include <loom/train/trainer.hpp>

#include "../support/run_dir.hpp"

namespace fs = std::filesystem;
using namespace loom;
using Catch::Contains;
using train::Json;

namespace {

using test::fresh_dir;
using test::read_metrics;

Json tiny_image_recipe() {
  Json r = {{"model", {{"kind", "image_classifier"}, {"arch", "cnn"}, {"width", 8}, {"hidden", 32}, {"dropout", 0.1}}},
            {"data", {{"train_limit", 640}, {"test_limit", 200}}},
            {"train", {{"steps", 20}, {"batch_size", 32}, {"log_every", 1}, {"checkpoint_every", 5}, {"keep_checkpoints", 2},
                       {"seed", 3}, {"num_workers", 2}}},
            {"optim", {{"lr", 1e-2}, {"warmup_steps", 3}}}};
  return train::resolve(r, train::task_schema(r), "tiny image recipe");
}

}  // namespace

TEST_CASE("20 steps straight equal 10 steps, resume, 10 steps, bitwise", "[e2e]") {
  const Json recipe = tiny_image_recipe();
  const std::string straight = fresh_dir("straight"), split = fresh_dir("split");
  train::run_training(recipe, {straight, "", true, 0});
  train::run_training(recipe, {split, "", true, 10});
  CHECK(read_metrics(split).size() == 10);
  train::run_training(recipe, {split, split, true, 0});
  const auto a = read_metrics(straight), b = read_metrics(split);
  REQUIRE(a.size() == 20);
  REQUIRE(b.size() == 20);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << a[i]["step"]);
    CHECK(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());
    CHECK(a[i]["grad_norm"].get<double>() == b[i]["grad_norm"].get<double>());
  }
  // the final weights are identical too, and only the newest checkpoints are kept
  const auto ca = io::load_checkpoint(io::list_checkpoints(straight).back());
  const auto cb = io::load_checkpoint(io::list_checkpoints(split).back());
  REQUIRE(ca.weights.size() == cb.weights.size());
  for (size_t i = 0; i < ca.weights.size(); ++i)
    CHECK(ca.weights[i].second.to_vector<float>() == cb.weights[i].second.to_vector<float>());
  CHECK(io::list_checkpoints(straight).size() == 2);
  const Json eval = Json::parse(std::ifstream(fs::path(straight) / "eval.json"));
  CHECK(eval["metrics"]["accuracy"].get<double>() > 0.3);  // 20 steps on 640 images: well above chance (0.1)
  CHECK(eval["n"]["accuracy"] == 200);
  fs::remove_all(straight);
  fs::remove_all(split);
}

TEST_CASE("recipes reject unknown keys and wrong types by path", "[e2e]") {
  Json r = {{"model", {{"kind", "image_classifier"}, {"arhc", "cnn"}}}};
  CHECK_THROWS_WITH(train::resolve(r, train::task_schema(r), "r.json"), Contains("r.json") && Contains("'model.arhc'"));
  r = {{"model", {{"kind", "gpt"}}}, {"train", {{"steps", "many"}}}};
  CHECK_THROWS_WITH(train::resolve(r, train::task_schema(r), "r.json"),
                    Contains("'train.steps'") && Contains("integer") && Contains("\"many\""));
  r = {{"model", {{"kind", "unet"}}}};
  CHECK_THROWS_WITH(train::task_schema(r), Contains("unknown model.kind 'unet'") && Contains("gpt"));
  Json base = {{"model", {{"kind", "gpt"}}}};
  train::apply_override(base, "optim.lr=3e-4");
  train::apply_override(base, "optim.schedule=linear");
  CHECK(base["optim"]["lr"].get<double>() == 3e-4);
  CHECK(base["optim"]["schedule"] == "linear");
  CHECK_THROWS_WITH(train::apply_override(base, "optim.lr"), Contains("KEY.PATH=VALUE"));
}

TEST_CASE("non-finite steps are skipped, counted, and stop the run after max_bad_steps", "[e2e]") {
  Json recipe = tiny_image_recipe();
  recipe["optim"]["lr"] = 1e38;  // the first update overflows the weights
  recipe["optim"]["warmup_steps"] = 0;
  recipe["optim"]["schedule"] = "constant";
  recipe["train"]["max_bad_steps"] = 3;
  recipe["train"]["clip_grad_norm"] = 0.0;
  const std::string run = fresh_dir("nan");
  CHECK_THROWS_WITH(train::run_training(recipe, {run, "", true, 0}),
                    Contains("3 non-finite steps in a row") && Contains("max_bad_steps"));
  const auto m = read_metrics(run);
  REQUIRE(!m.empty());
  CHECK(m.back()["skipped_steps"].get<int64_t>() >= 1);
  fs::remove_all(run);
}

TEST_CASE("a tiny poetry GPT trains, evaluates against the bigram baseline and generates", "[e2e]") {
  Json r = {{"model", {{"kind", "gpt"}, {"vocab_size", 512}, {"d_model", 32}, {"n_layers", 1}, {"n_heads", 2}, {"seq_len", 32}}},
            {"train", {{"steps", 6}, {"batch_size", 4}, {"log_every", 2}, {"num_workers", 1}}},
            {"optim", {{"lr", 3e-3}}},
            {"eval", {{"max_batches", 2}}}};
  const Json recipe = train::resolve(r, train::task_schema(r), "tiny gpt recipe");
  const std::string run = fresh_dir("gpt");
  const auto summary = train::run_training(recipe, {run, "", true, 0});
  const auto& metrics = summary.eval["metrics"];
  CHECK(metrics["bits_per_byte"].get<double>() > 0);
  CHECK(metrics["bigram_bits_per_byte"].get<double>() > 1.0);
  CHECK(metrics["bigram_bits_per_byte"].get<double>() < 8.0);
  CHECK(summary.eval["chance"]["bits_per_byte"] == 8.0);
  // the run directory has what loom-generate needs
  auto tok = data::BpeTokenizer::load((fs::path(run) / "tokenizer.json").string());
  CHECK(tok.vocab_size() <= 512);
  models::GPTConfig c;
  c.vocab_size = 512, c.d_model = 32, c.n_layers = 1, c.n_heads = 2, c.seq_len = 32;
  models::GPT model(c);
  model.load_state_dict(io::load_checkpoint(io::list_checkpoints(run).back()).weights);
  Generator g(1);
  models::SamplingOptions s;
  s.max_tokens = 8;
  const auto prompt = tok.encode("春");
  const auto out = model.generate(prompt, s, g);
  CHECK(out.size() == prompt.size() + 8);
  CHECK_NOTHROW(tok.decode(out));
  fs::remove_all(run);
}

TEST_CASE("every recipe in recipes/ resolves against its task schema", "[e2e]") {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(LOOM_RECIPES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path());
    CHECK_NOTHROW(train::load_resolved_recipe(entry.path().string(), {}));
    ++n;
  }
  CHECK(n >= 2);
}

TEST_CASE("train.precision bf16 follows the fp32 run within bf16 error", "[e2e][autocast]") {
  Json r = {{"model", {{"kind", "gpt"}, {"vocab_size", 512}, {"d_model", 64}, {"n_layers", 2}, {"n_heads", 4}, {"seq_len", 32}}},
            {"train", {{"steps", 10}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1}}},
            {"optim", {{"lr", 3e-3}}},
            {"eval", {{"max_batches", 2}}}};
  auto run_in = [&](const std::string& precision) {
    r["train"]["precision"] = precision;
    const std::string run = fresh_dir("precision-" + precision);
    const auto summary = train::run_training(train::resolve(r, train::task_schema(r), "r"), {run, "", true, 0});
    const auto metrics = read_metrics(run);
    fs::remove_all(run);
    return std::make_pair(metrics, summary.eval["metrics"]["val_loss"].get<double>());
  };
  const auto [fp32, val32] = run_in("fp32");
  const auto [bf16, val16] = run_in("bf16");
  REQUIRE(fp32.size() == 10);
  REQUIRE(bf16.size() == 10);
  bool any_different = false;
  for (size_t i = 0; i < fp32.size(); ++i) {
    const double a = fp32[i]["loss"], b = bf16[i]["loss"];
    INFO("step " << i + 1 << ": fp32 " << a << ", bf16 " << b);
    CHECK(std::abs(a - b) <= 2e-2 * a);
    any_different = any_different || a != b;
  }
  CHECK(any_different);  // bf16 really ran
  CHECK(bf16.back()["loss"].get<double>() < bf16.front()["loss"].get<double>());  // and it learns
  CHECK(std::abs(val16 - val32) <= 2e-2 * val32);

  r["train"]["precision"] = "fp16";
  CHECK_THROWS_WITH(train::run_training(train::resolve(r, train::task_schema(r), "r"), {fresh_dir("fp16"), "", true, 0}),
                    Contains("train.precision must be \"fp32\" or \"bf16\""));
}

TEST_CASE("train.deterministic switches deterministic algorithms for the run, the CPU gives the same bits", "[e2e]") {
  Json r = {{"model", {{"kind", "gpt"}, {"vocab_size", 512}, {"d_model", 32}, {"n_layers", 1}, {"n_heads", 2}, {"seq_len", 16}}},
            {"train", {{"steps", 3}, {"batch_size", 4}, {"log_every", 1}, {"num_workers", 0}}},
            {"eval", {{"max_batches", 1}}}};
  auto losses_with = [&](const Json& deterministic) {
    r["train"]["deterministic"] = deterministic;
    const std::string run = fresh_dir("deterministic");
    train::run_training(train::resolve(r, train::task_schema(r), "r"), {run, "", true, 0});
    std::vector<double> losses;
    for (const Json& m : read_metrics(run)) losses.push_back(m["loss"]);
    fs::remove_all(run);
    return losses;
  };
  const auto plain = losses_with(false);
  CHECK_FALSE(deterministic_algorithms());
  const auto fixed = losses_with(true);
  CHECK(deterministic_algorithms());  // the run set it for the process
  CHECK(fixed == plain);
  set_deterministic_algorithms(false);
  CHECK_THROWS_WITH(losses_with("yes"), Contains("'train.deterministic' must be a boolean"));
}
