// A test-sized omni-modal run end to end: build a tiny tri-modal dataset (a
// tone generator stands in for espeak-ng, so the test needs no speech
// package), pretrain, evaluate with loom-eval's code path, and fine-tune the
// classifier from the pretrained checkpoint.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <tuple>

#include <loom/core/cuda.hpp>
#include <loom/data/trimodal.hpp>
#include <loom/io/checkpoint.hpp>
#include <loom/loom.hpp>
#include <loom/train/trainer.hpp>

#include "../support/run_dir.hpp"
#include "../support/tone_speech.hpp"

namespace fs = std::filesystem;
using namespace loom;
using Catch::Contains;
using train::Json;

namespace {

std::string fresh_dir(const std::string& name) { return test::fresh_dir("omni-" + name); }

const std::string& tiny_dataset() {
  static const std::string dir = [] {
    const std::string d = fresh_dir("data");
    data::trimodal::BuildOptions o;
    o.out = d;
    o.train_scenes = 48;
    o.eval_scenes = 40;
    o.train_videos = 8;
    o.eval_videos = 8;
    o.progress = false;
    data::trimodal::build(o, loom::testing::tone_speech);
    return d;
  }();
  return dir;
}

Json tiny_model(const char* kind) {
  return {{"kind", kind}, {"d_model", 16}, {"n_heads", 2}, {"embed_dim", 16}, {"text_layers", 1},
          {"image_layers", 1}, {"audio_layers", 1}, {"video_layers", 1}, {"fusion_layers", 1},
          {"decoder_layers", 1}, {"vocab_size", 320}, {"mel_frames", 128}, {"text_len", 24}};
}

Json resolved(Json r) { return train::resolve(r, train::task_schema(r), "test recipe"); }

// The logged loss of every step of a run (train.log_every 1).
std::vector<double> logged_losses(const std::string& run) {
  std::ifstream metrics(fs::path(run) / "metrics.jsonl");
  std::vector<double> loss;
  for (std::string line; std::getline(metrics, line);)
    if (const Json j = Json::parse(line); j.contains("loss")) loss.push_back(j["loss"]);
  return loss;
}

}  // namespace

TEST_CASE("omni pretraining, evaluation and classifier fine-tuning run end to end", "[e2e]") {
  const std::string data = tiny_dataset(), pre = fresh_dir("pretrain"), fine = fresh_dir("classify");
  const Json recipe = resolved({{"model", tiny_model("omni")},
                                {"data", {{"root", data}, {"video_batch", 4}}},
                                {"train", {{"steps", 8}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1}}},
                                {"optim", {{"lr", 3e-3}}},
                                {"eval", {{"zero_shot_limit", 60}, {"decode_limit", 10}}}});
  const auto summary = train::run_training(recipe, {pre, "", true, 0});
  CHECK(summary.steps == 8);
  CHECK(std::isfinite(summary.final_loss));
  CHECK(fs::exists(fs::path(pre) / "tokenizer.json"));

  // Every figure comes with its chance level and count, in both languages.
  const Json& ev = summary.eval;
  for (const char* key : {"i2t_r1", "t2i_r1", "a2t_r1", "t2a_r1", "i2a_r1", "a2i_r1", "v2t_r1", "t2v_r1",
                          "zero_shot_accuracy", "caption_exact_match", "asr_cer", "video_caption_exact_match"}) {
    for (const std::string& name : {std::string(key), std::string(key) + "_zh"}) {
      INFO(name);
      REQUIRE(ev["metrics"].contains(name));
      CHECK(ev["chance"].contains(name));
      CHECK(ev["n"][name].get<int64_t>() > 0);
      const double v = ev["metrics"][name];
      CHECK(v >= 0.0);
      if (name.rfind("asr_cer", 0) != 0) CHECK(v <= 1.0);
    }
  }
  CHECK(ev["chance"]["zero_shot_accuracy"].get<double>() == Approx(0.1));
  CHECK(ev["n"]["zero_shot_accuracy"].get<int64_t>() == 60);
  CHECK(ev["chance"]["i2t_r10"].get<double>() > ev["chance"]["i2t_r1"].get<double>());

  // The inference pipeline (what loom-serve runs) says what the evaluation said.
  {
    omni::OmniPipeline pipe(pre);
    data::trimodal::TrimodalDataset scenes(data, "eval");
    const Tensor image =
        omni::image_from_rgb8(scenes.images().select(0, 0).contiguous().data<uint8_t>(), 64, 64).unsqueeze(0);
    const Json& first = ev["examples"]["scenes"][0];
    CHECK(pipe.caption(image, "en")[0] == first["caption_en"].get<std::string>());
    CHECK(pipe.caption(image, "zh")[0] == first["caption_zh"].get<std::string>());
    const auto speech = audio::to_mono_float(audio::read_wav(scenes.records()[0].audio_en));
    CHECK(pipe.transcribe({speech}, "en")[0] == first["transcript_en"].get<std::string>());
    const Tensor e = pipe.embed_texts({"a red bag on the left", "左边是红色的包"});
    CHECK(e.shape() == Shape{2, 16});
    CHECK(sum(mul(e, e), {1}).to_vector<float>()[0] == Approx(1.0f));
    CHECK_THROWS_WITH(pipe.caption(image, "fr"), Contains("language 'fr'"));
    CHECK_THROWS_WITH(omni::OmniPipeline(data), Contains("neither a checkpoint nor a run directory"));
  }

  // loom-eval's path reproduces the trainer's evaluation from the checkpoint.
  const Json again = train::evaluate_run(pre, {}, fresh_dir("eval") + ".json");
  CHECK(again["metrics"] == ev["metrics"]);
  CHECK_THROWS_WITH(train::evaluate_run(pre, {"model.d_model=32"}, ""), Contains("is fixed by the training run"));
  CHECK_THROWS_WITH(train::evaluate_run(fresh_dir("nothing"), {}, ""), Contains("is not a directory"));

  // Zero-shot on the training split: the same number of images; a split
  // that is neither is refused by name.
  const Json on_train =
      train::evaluate_run(pre, {"eval.zero_shot_split=train", "eval.decode_limit=2"}, fresh_dir("eval-train") + ".json");
  CHECK(on_train["n"]["zero_shot_accuracy"].get<int64_t>() == 60);
  CHECK_THROWS_WITH(train::evaluate_run(pre, {"eval.zero_shot_split=validation"}, ""),
                    Contains("eval.zero_shot_split 'validation'"));

  // Fine-tuning the classifier from the pretrained weights: the frozen parts
  // keep exactly the pretrained values, the image encoder moves.
  const Json cls = resolved({{"model", tiny_model("omni_classify")},
                             {"data", {{"root", data}, {"label_fraction", 0.002}, {"test_limit", 100}}},
                             {"train", {{"steps", 4}, {"batch_size", 8}, {"num_workers", 1}, {"init_from", pre}}},
                             {"optim", {{"lr", 3e-3}}}});
  const auto fine_summary = train::run_training(cls, {fine, "", true, 0});
  CHECK(fine_summary.eval["n"]["train_labels"].get<int64_t>() >= 100);
  const auto before = io::load_checkpoint(io::list_checkpoints(pre).back()).weights;
  const auto after = io::load_checkpoint(io::list_checkpoints(fine).back()).weights;
  auto weight = [](const nn::NamedTensors& w, const std::string& name) {
    for (const auto& [n, t] : w)
      if (n == name) return t;
    FAIL("no weight " << name);
    return Tensor();
  };
  CHECK(allclose(weight(before, "text.embed.weight"), weight(after, "text.embed.weight"), 0, 0));
  CHECK_FALSE(allclose(weight(before, "image.stem.proj.weight"), weight(after, "image.stem.proj.weight"), 0, 0));

  // The pretraining layout for the classifier's training images: from the
  // same initial weights and seed, the first step already sees other pixels.
  const auto first_step_loss = [&](const std::string& layout) {
    Json r = cls;
    r["data"]["train_layout"] = layout;
    r["train"]["init_from"] = "";
    r["train"]["steps"] = 1;
    r["train"]["log_every"] = 1;
    const std::string run = fresh_dir("classify-" + layout);
    REQUIRE(train::run_training(r, {run, "", true, 0}).steps == 1);
    return logged_losses(run).at(0);
  };
  CHECK(first_step_loss("scenes") != first_step_loss("center"));
  Json bad_layout = cls;
  bad_layout["data"]["train_layout"] = "diagonal";
  CHECK_THROWS_WITH(train::run_training(bad_layout, {fresh_dir("bad-layout"), "", true, 0}),
                    Contains("data.train_layout 'diagonal'"));

  const Json bad = {{"model", tiny_model("omni_classify")},
                    {"data", {{"root", data}}},
                    {"train", {{"steps", 1}, {"init_from", fresh_dir("missing")}}}};
  CHECK_THROWS_WITH(train::run_training(resolved(bad), {fresh_dir("bad"), "", true, 0}),
                    Contains("init_from"));
}

TEST_CASE("the omni task names a missing dataset and the command to build it", "[e2e]") {
  const Json r = resolved({{"model", tiny_model("omni")}, {"data", {{"root", fresh_dir("absent")}}}});
  CHECK_THROWS_WITH(train::run_training(r, {fresh_dir("absent-run"), "", true, 0}),
                    Contains("loom-data trimodal --out"));
}

TEST_CASE("class negatives alone train the image and text towers and lower their loss", "[e2e]") {
  Json model = tiny_model("omni");
  Json losses = train::task_schema({{"model", {{"kind", "omni"}}}})["model"]["losses"];
  for (auto& [name, weight] : losses.items()) weight = 0.0;
  losses["class_negatives"] = 1.0;
  model["losses"] = losses;
  const std::string run = fresh_dir("class-negatives");
  const Json recipe = resolved({{"model", model},
                                {"data", {{"root", tiny_dataset()}, {"class_negatives_per_row", 3}}},
                                {"train", {{"steps", 150}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1}}},
                                {"optim", {{"lr", 1e-2}}}});
  const auto summary = train::run_training(recipe, {run, "", true, 0});
  REQUIRE(summary.steps == 150);
  const std::vector<double> loss = logged_losses(run);
  REQUIRE(loss.size() == 150);
  // Four candidates per image: the first steps score near log 4 (chance); the
  // last thirty steps average clearly lower than the first twenty.
  const auto mean = [&](size_t a, size_t b) { return std::accumulate(loss.begin() + a, loss.begin() + b, 0.0) / (b - a); };
  CHECK(mean(0, 20) > 0.8 * std::log(4.0));
  CHECK(mean(120, 150) < 0.9 * mean(0, 20));
}

TEST_CASE("omni trains with data.layout_group, and names a group size that does not divide the batch", "[e2e]") {
  // (the grouping itself is the loader's, tested in data_loader_test.cpp)
  const auto recipe = [&](int64_t group) {
    return resolved({{"model", tiny_model("omni")},
                     {"data", {{"root", tiny_dataset()}, {"video_batch", 4}, {"layout_group", group}}},
                     {"train", {{"steps", 2}, {"batch_size", 8}, {"num_workers", 0}}},
                     {"eval", {{"zero_shot_limit", 8}, {"decode_limit", 2}}}});
  };
  CHECK(train::run_training(recipe(4), {fresh_dir("layout-group"), "", true, 0}).steps == 2);
  CHECK_THROWS_WITH(train::run_training(recipe(3), {fresh_dir("layout-group-bad"), "", true, 0}),
                    Contains("data.layout_group 3") && Contains("train.batch_size 8"));
}

TEST_CASE("the speech cache changes no bit of training", "[e2e]") {
  // Two epochs of the 48 scenes: the second reads every scene's speech from
  // the cache, and each step's loss must equal the uncached run's exactly;
  // with the loader's features, and with the samples the task turns into
  // features itself (data.speech_features = device, here on the CPU).
  const auto losses = [&](const std::string& where, int64_t cache_mb) {
    const std::string run = fresh_dir("speech-cache-" + where + std::to_string(cache_mb));
    const Json recipe =
        resolved({{"model", tiny_model("omni")},
                  {"data",
                   {{"root", tiny_dataset()}, {"video_batch", 4}, {"speech_cache_mb", cache_mb}, {"speech_features", where}}},
                  {"train", {{"steps", 12}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 2}}},
                  {"optim", {{"lr", 3e-3}}},
                  {"eval", {{"zero_shot_limit", 20}, {"decode_limit", 2}}}});
    REQUIRE(train::run_training(recipe, {run, "", true, 0}).steps == 12);
    return logged_losses(run);
  };
  for (const std::string where : {"host", "device"}) {
    INFO("data.speech_features = " << where);
    const std::vector<double> cached = losses(where, 64), fresh = losses(where, 0);
    REQUIRE(cached.size() == 12);
    CHECK(cached == fresh);
  }
}

TEST_CASE("omni pretraining, evaluation and fine-tuning on cuda:0 equal the CPU runs", "[e2e][device]") {
  // On a host emulation of the device (its kernels are the CPU's): any tensor
  // the task leaves on the CPU fails the run, and every figure must be equal.
  const auto run_on = [&](const std::string& device, const std::string& kind, const std::string& init_from) {
    const std::string run = fresh_dir(kind + "-" + device.substr(0, 4));
    Json train = {{"steps", 3}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1}, {"device", device}};
    if (!init_from.empty()) train["init_from"] = init_from;
    const bool pretrain = kind == "omni";
    const Json data = pretrain ? Json{{"root", tiny_dataset()}, {"video_batch", 4}}
                               : Json{{"root", tiny_dataset()}, {"label_fraction", 0.002}, {"test_limit", 100}};
    const Json eval = pretrain ? Json{{"zero_shot_limit", 20}, {"decode_limit", 2}} : Json::object();
    const Json recipe = resolved({{"model", tiny_model(kind.c_str())},
                                  {"data", data},
                                  {"train", train},
                                  {"optim", {{"lr", 3e-3}}},
                                  {"eval", eval}});
    std::optional<cuda::HostEmulation> emulation;
    if (device != "cpu") emulation.emplace();
    const Json metrics = train::run_training(recipe, {run, "", true, 0}).eval["metrics"];
    return std::make_tuple(run, logged_losses(run), metrics);
  };
  const auto [pre_cpu, loss_cpu, eval_cpu] = run_on("cpu", "omni", "");
  const auto [pre_dev, loss_dev, eval_dev] = run_on("cuda", "omni", "");
  REQUIRE(loss_cpu.size() == 3);
  CHECK(loss_dev == loss_cpu);
  CHECK(eval_dev == eval_cpu);
  const auto [cls_cpu, closs_cpu, ceval_cpu] = run_on("cpu", "omni_classify", pre_cpu);
  const auto [cls_dev, closs_dev, ceval_dev] = run_on("cuda", "omni_classify", pre_dev);
  CHECK(closs_dev == closs_cpu);
  CHECK(ceval_dev == ceval_cpu);
  for (const auto& d : {pre_cpu, pre_dev, cls_cpu, cls_dev}) fs::remove_all(d);
}

TEST_CASE("omni pretraining in bf16 follows the fp32 run and evaluates", "[e2e][autocast]") {
  const auto run_in = [&](const std::string& precision) {
    const std::string run = fresh_dir("precision-" + precision);
    const Json recipe = resolved({{"model", tiny_model("omni")},
                                  {"data", {{"root", tiny_dataset()}, {"video_batch", 4}}},
                                  {"train", {{"steps", 4}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1},
                                             {"precision", precision}}},
                                  {"optim", {{"lr", 3e-3}}},
                                  {"eval", {{"zero_shot_limit", 20}, {"decode_limit", 2}}}});
    const Json eval = train::run_training(recipe, {run, "", true, 0}).eval;
    const auto losses = logged_losses(run);
    fs::remove_all(run);
    return std::make_pair(losses, eval);
  };
  const auto [fp32, eval32] = run_in("fp32");
  const auto [bf16, eval16] = run_in("bf16");
  REQUIRE(bf16.size() == 4);
  for (size_t i = 0; i < fp32.size(); ++i) {
    INFO("step " << i + 1 << ": fp32 " << fp32[i] << ", bf16 " << bf16[i]);
    CHECK(std::abs(fp32[i] - bf16[i]) <= 2e-2 * fp32[i]);
  }
  CHECK(bf16 != fp32);
  // every figure of the evaluation is there, from f32 similarities
  CHECK(eval16["metrics"].size() == eval32["metrics"].size());
  for (const auto& [name, value] : eval16["metrics"].items()) {
    INFO(name);
    CHECK(std::isfinite(value.get<double>()));
  }
}

TEST_CASE("speech features computed on the device from the samples follow the loader's host features", "[e2e][device]") {
  // data.speech_features = device: the loader hands over samples and the task
  // computes the features on the model's device (an emulated cuda:0 here),
  // in f32 instead of the host's float64 normalisation: the losses follow the
  // host-feature run on the same device closely but not bit for bit.
  struct Run {
    std::vector<double> losses;
    std::vector<float> weights;  // every trained parameter, in checkpoint order
  };
  const auto train_with = [&](const std::string& where, const std::string& device) {
    const std::string run = fresh_dir("speech-" + where);
    const Json recipe = resolved(
        {{"model", tiny_model("omni")},
         {"data", {{"root", tiny_dataset()}, {"video_batch", 4}, {"speech_features", where}, {"speech_cache_mb", 64}}},
         {"train", {{"steps", 3}, {"batch_size", 8}, {"log_every", 1}, {"num_workers", 1}, {"device", device}}},
         {"optim", {{"lr", 3e-3}}},
         {"eval", {{"zero_shot_limit", 20}, {"decode_limit", 2}}}});
    std::optional<cuda::HostEmulation> emulation;
    if (device != "cpu") emulation.emplace();
    const Json eval = train::run_training(recipe, {run, "", true, 0}).eval;
    CHECK(eval["metrics"].contains("a2t_r1"));
    Run r{logged_losses(run), {}};
    const std::vector<std::string> checkpoints = io::list_checkpoints(run);
    REQUIRE_FALSE(checkpoints.empty());
    for (const auto& [name, t] : io::load_checkpoint(checkpoints.back()).weights)
      for (const float x : t.to(DType::f32).to_vector<float>()) r.weights.push_back(x);
    fs::remove_all(run);
    return r;
  };
  const Run host = train_with("host", "cuda"), device = train_with("device", "cuda");
  REQUIRE(host.losses.size() == 3);
  REQUIRE(device.losses.size() == 3);
  for (size_t i = 0; i < host.losses.size(); ++i) {
    INFO("step " << i + 1 << ": host features " << host.losses[i] << ", device features " << device.losses[i]);
    CHECK(std::abs(device.losses[i] - host.losses[i]) <= 1e-3 * host.losses[i]);
  }
  // The f32 features did feed the model: the trained weights are not the
  // host run's bits. (The logged f32 losses can agree to the last bit when
  // the features differ only in their last bits.)
  REQUIRE(device.weights.size() == host.weights.size());
  size_t differing = 0;
  for (size_t i = 0; i < host.weights.size(); ++i) differing += device.weights[i] != host.weights[i];
  INFO(differing << " of " << host.weights.size() << " weights differ");
  CHECK(differing > 0);
  const Json bad = resolved({{"model", tiny_model("omni")},
                             {"data", {{"root", tiny_dataset()}, {"speech_features", "gpu"}}},
                             {"train", {{"steps", 1}, {"batch_size", 8}}}});
  CHECK_THROWS_WITH(train::run_training(bad, {fresh_dir("speech-bad"), "", true, 0}),
                    Catch::Contains("data.speech_features is 'gpu', expected host or device"));
}
