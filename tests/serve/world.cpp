// The loom-serve tests' world: data, runs, adapter, server and client (see world.hpp).
#include "world.hpp"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <loom/audio/wav.hpp>
#include <loom/autograd/grad_mode.hpp>
#include <loom/data/trimodal.hpp>
#include <loom/io/png.hpp>
#include <loom/nn/lora.hpp>
#include <loom/omni/features.hpp>
#include <loom/ops/ops.hpp>
#include <loom/train/task.hpp>
#include <loom/train/trainer.hpp>

#include "../support/tone_speech.hpp"
#include "serve/base64.hpp"

namespace fs = std::filesystem;

namespace loom::serve_test {

namespace {

using train::Json;

Json resolved(Json r) { return train::resolve(r, train::task_schema(r), "serve test recipe"); }

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("loom-serve-test-" + std::to_string(::getpid()));
  Scratch() { fs::remove_all(dir); }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

World build_world() {
  static Scratch scratch;
  World w;
  w.data = (scratch.dir / "data").string();
  w.run = (scratch.dir / "omni").string();
  w.adapter = (scratch.dir / "adapter-shift").string();
  w.gpt = (scratch.dir / "gpt").string();
  w.index = (scratch.dir / "captions.txt").string();

  data::trimodal::BuildOptions o;
  o.out = w.data;
  o.train_scenes = 32;
  o.eval_scenes = 12;
  o.train_videos = 8;
  o.eval_videos = 8;
  o.progress = false;
  data::trimodal::build(o, loom::testing::tone_speech);

  const Json model = {{"kind", "omni"}, {"d_model", 16}, {"n_heads", 2}, {"embed_dim", 16}, {"text_layers", 1},
                      {"image_layers", 1}, {"audio_layers", 1}, {"video_layers", 1}, {"fusion_layers", 1},
                      {"decoder_layers", 1}, {"vocab_size", 320}, {"mel_frames", 128}, {"text_len", 24}};
  train::run_training(resolved({{"model", model},
                                {"data", {{"root", w.data}, {"video_batch", 4}}},
                                {"train", {{"steps", 4}, {"batch_size", 8}, {"num_workers", 1}}},
                                {"optim", {{"lr", 3e-3}}},
                                {"eval", {{"zero_shot_limit", 10}, {"decode_limit", 2}}}}),
                      {w.run, "", true, 0});

  {  // adapter "shift": LoRA on every linear layer with a random, non-zero B
    omni::OmniPipeline pipe(w.run);
    nn::LoraOptions lora;
    lora.rank = 2;
    lora.alpha = 4;
    nn::apply_lora(pipe.model(), "shift", lora);
    Generator gen(11);
    NoGradGuard no_grad;
    const std::string suffix = ".lora.shift.B";
    for (auto& [name, p] : pipe.model().named_parameters())
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        p.copy_(mul(randn(p.shape(), {}, &gen), 0.5));
    nn::save_adapter(pipe.model(), "shift", w.adapter);
  }

  train::run_training(
      resolved({{"model", {{"kind", "gpt"}, {"vocab_size", 512}, {"d_model", 32}, {"n_layers", 1}, {"n_heads", 2},
                           {"seq_len", 32}}},
                {"train", {{"steps", 2}, {"batch_size", 4}, {"num_workers", 1}}},
                {"optim", {{"lr", 3e-3}}},
                {"eval", {{"max_batches", 1}}}}),
      {w.gpt, "", true, 0});

  w.index_captions = {"a red bag on the left", "a blue sneaker on the right", "a green dress at the top",
                      "左边是红色的包"};
  std::ofstream(w.index) << w.index_captions[0] << "\n\n  " << w.index_captions[1] << "  \n"
                         << w.index_captions[2] << "\n" << w.index_captions[3] << "\n" << w.index_captions[0] << "\n";
  return w;
}

const data::trimodal::TrimodalDataset& scenes() {
  static const data::trimodal::TrimodalDataset d(world().data, "eval");
  return d;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Answer to_answer(const httplib::Result& res) {
  Answer a;
  if (!res) {
    a.error = httplib::to_string(res.error());
    return a;
  }
  a.status = res->status;
  a.content_type = res->get_header_value("Content-Type");
  a.body = res->body;
  a.json = nlohmann::json::parse(a.body, nullptr, false);
  if (a.json.is_discarded()) a.json = nullptr;
  return a;
}

}  // namespace

const World& world() {
  static const World w = build_world();
  return w;
}

omni::OmniPipeline& base_pipeline() {
  static omni::OmniPipeline p(world().run);
  return p;
}

omni::OmniPipeline& shifted_pipeline() {
  static const auto p = [] {
    auto pipe = std::make_unique<omni::OmniPipeline>(world().run);
    nn::load_adapter(pipe->model(), "shift", world().adapter);
    pipe->model().eval();
    return pipe;
  }();
  return *p;
}

int scene_count() { return static_cast<int>(scenes().size()); }

Tensor scene_image(int i) {
  return omni::image_from_rgb8(scenes().images().select(0, i).contiguous().data<uint8_t>(), 64, 64).unsqueeze(0);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size())
    throw std::runtime_error("max_abs_diff: sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size()));
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::string scene_png_base64(int i) { return serve::base64_encode(io::encode_png(scenes().images().select(0, i).contiguous())); }

std::vector<float> scene_speech(int i) {
  return audio::to_mono_float(audio::read_wav(scenes().records()[static_cast<size_t>(i)].audio_en));
}

std::string scene_wav_base64(int i) {
  return serve::base64_encode(read_file(scenes().records()[static_cast<size_t>(i)].audio_en));
}

serve::ServeOptions world_options() {
  serve::ServeOptions o;
  o.engine.run = world().run;
  o.engine.adapters = {{"shift", world().adapter}};
  o.engine.generator = world().gpt;
  o.port = 0;
  return o;
}

TestServer::TestServer(serve::ServeOptions options) {
  options.host = "127.0.0.1";
  options.port = 0;
  server_ = std::make_unique<serve::Server>(options, [this](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mutex_);
    log_ += line + "\n";
  });
  port_ = server_->bind();
  thread_ = std::thread([this] { server_->serve(); });
  for (int i = 0; i < 500 && get("/healthz").status != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

TestServer::~TestServer() {
  server_->stop();
  thread_.join();
}

Answer TestServer::send(const std::string& method, const std::string& path, const std::string& body) const {
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(120, 0);
  client.set_tcp_nodelay(true);
  if (method == "GET") return to_answer(client.Get(path));
  if (method == "POST") return to_answer(client.Post(path, body, "application/json"));
  if (method == "PUT") return to_answer(client.Put(path, body, "application/json"));
  if (method == "DELETE") return to_answer(client.Delete(path));
  throw std::invalid_argument("TestServer::send: method " + method);
}

Answer TestServer::post(const std::string& path, const std::string& body) const { return send("POST", path, body); }
Answer TestServer::get(const std::string& path) const { return send("GET", path); }

std::string TestServer::log() const {
  std::lock_guard<std::mutex> lock(log_mutex_);
  return log_;
}

std::vector<std::pair<std::string, double>> metric_samples(const std::string& page) {
  std::vector<std::pair<std::string, double>> out;
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out.emplace_back(line.substr(0, space), std::stod(line.substr(space + 1)));
  }
  return out;
}

std::vector<float> floats(const nlohmann::json& array) {
  std::vector<float> out;
  for (const auto& x : array) out.push_back(x.get<float>());
  return out;
}

}  // namespace loom::serve_test
