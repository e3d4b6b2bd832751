// What the loom-serve tests serve and compare against, built once per test
// process under the temp directory (removed at exit): a tiny tri-modal
// dataset whose speech is tones (so no speech package is needed), an omni
// run trained on it for a few steps, a LoRA adapter "shift" for that run
// (random B on every layer, so it changes every output), a tiny GPT run and
// a caption file; plus an in-process server on an ephemeral loopback port
// and a small HTTP client.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <loom/core/tensor.hpp>
#include <loom/omni/pipeline.hpp>

#include "serve/server.hpp"

namespace loom::serve_test {

struct World {
  std::string data, run, adapter, gpt, index;
  std::vector<std::string> index_captions;  // the lines of `index`
};
const World& world();

// The run's pipeline without adapters, and one with "shift" loaded and active.
omni::OmniPipeline& base_pipeline();
omni::OmniPipeline& shifted_pipeline();

// The largest |a[i] - b[i]|; throws (a test failure) when the sizes differ.
float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

// Evaluation scene i of the dataset: its picture as f32 [1, 3, 64, 64] and as
// base64 PNG, its English speech as 16 kHz samples and as base64 WAV.
Tensor scene_image(int i);
std::string scene_png_base64(int i);
std::vector<float> scene_speech(int i);
std::string scene_wav_base64(int i);
int scene_count();

// The run, adapter "shift" and the GPT generator, on port 0.
serve::ServeOptions world_options();

struct Answer {
  int status = 0;     // 0: no answer
  std::string error;  // why there is none
  std::string content_type, body;
  nlohmann::json json;  // the body parsed, or null
};

class TestServer {
 public:
  explicit TestServer(serve::ServeOptions options = world_options());
  ~TestServer();
  int port() const { return port_; }
  Answer post(const std::string& path, const std::string& body) const;
  Answer post(const std::string& path, const nlohmann::json& body) const { return post(path, body.dump()); }
  Answer get(const std::string& path) const;
  Answer send(const std::string& method, const std::string& path, const std::string& body = "") const;
  std::string log() const;

 private:
  std::unique_ptr<serve::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex log_mutex_;
  std::string log_;
};

// The value of every sample line of a Prometheus text page, by its name
// with labels ("loom_serve_batches_total{endpoint=\"/v1/caption\",size=\"2\"}").
std::vector<std::pair<std::string, double>> metric_samples(const std::string& page);

// The floats of a JSON array.
std::vector<float> floats(const nlohmann::json& array);

}  // namespace loom::serve_test
