// loom-train with train.device on a CUDA device, on cuda::HostEmulation (host
// memory, the CPU's kernels) so that it runs on every machine: the run must
// equal the CPU run bit for bit, resume exactly, and write the same files.
// On a GPU the same recipes run under the label `cuda` (tests/cuda).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <loom/core/cuda.hpp>
#include <loom/io/checkpoint.hpp>
#include <loom/loom.hpp>
#include <loom/train/trainer.hpp>

#include "../support/run_dir.hpp"

namespace fs = std::filesystem;
using namespace loom;
using Catch::Contains;
using train::Json;

namespace {

std::string fresh_dir(const std::string& name) { return test::fresh_dir("device-" + name); }
using test::read_metrics;

Json resolved(Json r, const std::string& device) {
  r["train"]["device"] = device;
  return train::resolve(r, train::task_schema(r), "device test recipe");
}

// Losses, gradient norms, the evaluation and the final checkpoint's tensors.
void expect_same_run(const std::string& a, const std::string& b) {
  const auto ma = read_metrics(a), mb = read_metrics(b);
  REQUIRE(ma.size() == mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    INFO("metrics line " << i);
    CHECK(ma[i].value("loss", -1.0) == mb[i].value("loss", -1.0));
    CHECK(ma[i].value("grad_norm", -1.0) == mb[i].value("grad_norm", -1.0));
  }
  const Json ea = Json::parse(std::ifstream(fs::path(a) / "eval.json"));
  const Json eb = Json::parse(std::ifstream(fs::path(b) / "eval.json"));
  CHECK(ea["metrics"] == eb["metrics"]);
  const auto ca = io::load_checkpoint(io::list_checkpoints(a).back());
  const auto cb = io::load_checkpoint(io::list_checkpoints(b).back());
  REQUIRE(ca.weights.size() == cb.weights.size());
  REQUIRE(ca.optimizer.size() == cb.optimizer.size());
  for (size_t i = 0; i < ca.weights.size(); ++i) {
    INFO(ca.weights[i].first);
    CHECK(ca.weights[i].second.device() == kCPU);
    CHECK(ca.weights[i].second.to_vector<double>() == cb.weights[i].second.to_vector<double>());
  }
  for (size_t i = 0; i < ca.optimizer.size(); ++i)
    CHECK(ca.optimizer[i].second.to_vector<double>() == cb.optimizer[i].second.to_vector<double>());
}

const Json kImageRecipe = {
    {"model", {{"kind", "image_classifier"}, {"arch", "cnn"}, {"width", 8}, {"hidden", 32}, {"dropout", 0.1}}},
    {"data", {{"train_limit", 320}, {"test_limit", 100}}},
    {"train", {{"steps", 8}, {"batch_size", 32}, {"log_every", 1}, {"checkpoint_every", 4}, {"seed", 3},
               {"num_workers", 1}}},
    {"optim", {{"lr", 1e-2}, {"warmup_steps", 2}}}};

}  // namespace

TEST_CASE("an image classifier trained on cuda:0 equals the CPU run and resumes exactly", "[e2e][device]") {
  const std::string on_cpu = fresh_dir("image-cpu"), on_dev = fresh_dir("image-dev"), split = fresh_dir("image-split");
  train::run_training(resolved(kImageRecipe, "cpu"), {on_cpu, "", true, 0});
  {
    cuda::HostEmulation emulation;
    const Json recipe = resolved(kImageRecipe, "cuda");
    train::run_training(recipe, {on_dev, "", true, 0});
    train::run_training(recipe, {split, "", true, 4});     // stops after step 4
    train::run_training(recipe, {split, split, true, 0});  // resumes on the device
  }
  expect_same_run(on_cpu, on_dev);
  expect_same_run(on_cpu, split);
  for (const auto& d : {on_cpu, on_dev, split}) fs::remove_all(d);
}

TEST_CASE("a poetry GPT trained on cuda:0 equals the CPU run, and loom-eval runs there", "[e2e][device]") {
  const Json r = {{"model", {{"kind", "gpt"}, {"vocab_size", 512}, {"d_model", 32}, {"n_layers", 1}, {"n_heads", 2},
                             {"seq_len", 32}, {"dropout", 0.1}}},
                  {"train", {{"steps", 4}, {"batch_size", 4}, {"log_every", 1}, {"num_workers", 1}}},
                  {"optim", {{"lr", 3e-3}}},
                  {"eval", {{"max_batches", 2}}}};
  const std::string on_cpu = fresh_dir("gpt-cpu"), on_dev = fresh_dir("gpt-dev");
  train::run_training(resolved(r, "cpu"), {on_cpu, "", true, 0});
  {
    cuda::HostEmulation emulation;
    train::run_training(resolved(r, "cuda:0"), {on_dev, "", true, 0});
    const Json again = train::evaluate_run(on_dev, {}, (fs::path(on_dev) / "eval-again.json").string());
    const Json first = Json::parse(std::ifstream(fs::path(on_dev) / "eval.json"));
    CHECK(again["metrics"] == first["metrics"]);
  }
  expect_same_run(on_cpu, on_dev);
  for (const auto& d : {on_cpu, on_dev}) fs::remove_all(d);
}

TEST_CASE("train.device names what is wrong with it", "[e2e][device]") {
  cuda::HostEmulation emulation(1);
  const std::string run = fresh_dir("bad-device");
  CHECK_THROWS_WITH(train::run_training(resolved(kImageRecipe, "gpu"), {run, "", true, 0}),
                    Contains("train.device 'gpu' is not a device"));
  CHECK_THROWS_WITH(train::run_training(resolved(kImageRecipe, "cuda:3"), {run, "", true, 0}),
                    Contains("train.device 'cuda:3'") && Contains("1 CUDA device(s)"));
  CHECK_THROWS_WITH(train::run_training(resolved(kImageRecipe, "cuda:x"), {run, "", true, 0}),
                    Contains("'cuda:x' is not a device"));
  Json wrong_type = kImageRecipe;
  wrong_type["train"]["device"] = 0;
  CHECK_THROWS_WITH(train::resolve(wrong_type, train::task_schema(wrong_type), "r"), Contains("train.device"));
  fs::remove_all(run);
}

TEST_CASE("dist.backend: a transport that cannot run fails at start-up, naming why", "[e2e][device]") {
  const std::string run = fresh_dir("bad-backend");
  const auto with_backend = [](const std::string& backend, const std::string& device) {
    Json r = kImageRecipe;
    r["dist"]["backend"] = backend;
    return resolved(r, device);
  };
  CHECK_THROWS_WITH(train::run_training(with_backend("mpi", "cpu"), {run, "", true, 0}),
                    Contains("dist.backend is 'mpi', expected auto, nccl or staged"));
  CHECK_THROWS_WITH(train::run_training(with_backend("nccl", "cpu"), {run, "", true, 0}),
                    Contains("the nccl transport carries CUDA tensors; this rank trains on cpu"));
  {
    cuda::HostEmulation emulation(1);
    CHECK_THROWS_WITH(train::run_training(with_backend("nccl", "cuda"), {run, "", true, 0}),
                      dist::nccl_built() ? Contains("cuda:0 is a host emulation (NCCL needs a real GPU)")
                                         : Contains("this build of loom has no NCCL"));
    // Host staging runs anywhere a device does (one rank: nothing to stage).
    const std::string staged = fresh_dir("staged");
    train::run_training(with_backend("staged", "cuda"), {staged, "", true, 0});
    CHECK(read_metrics(staged).size() == 8);
    fs::remove_all(staged);
  }
  fs::remove_all(run);
}

TEST_CASE("device transports by name", "[e2e][device]") {
  for (const char* name : {"auto", "nccl", "staged"})
    CHECK(std::string(dist::device_transport_name(dist::parse_device_transport(name))) == name);
  CHECK_THROWS_WITH(dist::parse_device_transport("gloo"), Contains("expected auto, nccl or staged"));
}
