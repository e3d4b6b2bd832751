// Concurrency: simultaneous requests all succeed, share model calls (the
// metrics show batches of more than one request), and batches never mix
// adapters; adapters change the answers to what the pipeline with that
// adapter says.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <latch>
#include <regex>
#include <thread>

#include "world.hpp"

using namespace loom;
using namespace loom::serve_test;
using nlohmann::json;

namespace {

// Batch sizes of `endpoint` on the metrics page: size -> number of model calls.
std::map<int, int> batch_sizes(const TestServer& server, const std::string& endpoint) {
  std::map<int, int> out;
  const std::regex line("loom_serve_batches_total\\{endpoint=\"" + endpoint + "\",size=\"([0-9]+)\"\\}");
  for (const auto& [name, value] : metric_samples(server.get("/metrics").body)) {
    std::smatch m;
    if (std::regex_match(name, m, line)) out[std::stoi(m[1])] = static_cast<int>(value);
  }
  return out;
}

// Runs `request(i)` for i < n on n threads that start together.
std::vector<Answer> at_once(int n, const std::function<Answer(int)>& request) {
  std::vector<Answer> answers(static_cast<size_t>(n));
  std::latch go(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      answers[static_cast<size_t>(i)] = request(i);
    });
  for (auto& t : threads) t.join();
  return answers;
}

}  // namespace

TEST_CASE("sixteen concurrent requests all succeed and share model calls", "[serve]") {
  serve::ServeOptions o = world_options();
  o.batch_ms = 100;
  TestServer server(o);
  const int n = 16;
  std::vector<std::string> bodies, expected;
  for (int i = 0; i < n; ++i) {
    const int scene = i % scene_count();
    bodies.push_back(json{{"image_png_base64", scene_png_base64(scene)}}.dump());
    expected.push_back(base_pipeline().caption(scene_image(scene), "en")[0]);
  }
  const auto answers = at_once(n, [&](int i) { return server.post("/v1/caption", bodies[static_cast<size_t>(i)]); });
  for (int i = 0; i < n; ++i) {
    INFO("request " << i << ": " << answers[static_cast<size_t>(i)].error);
    REQUIRE(answers[static_cast<size_t>(i)].status == 200);
    CHECK(answers[static_cast<size_t>(i)].json["caption"] == expected[static_cast<size_t>(i)]);
  }
  const auto sizes = batch_sizes(server, "/v1/caption");
  int requests = 0, largest = 0;
  for (const auto& [size, calls] : sizes) {
    requests += size * calls;
    largest = std::max(largest, size);
  }
  CHECK(requests == n);  // every request in exactly one model call
  CHECK(largest > 1);
  CHECK(server.get("/metrics").body.find("loom_serve_requests_total{endpoint=\"/v1/caption\",status=\"200\"} 16") !=
        std::string::npos);
  CHECK(server.get("/metrics").body.find("loom_serve_latency_seconds_count{endpoint=\"/v1/caption\"} 16") !=
        std::string::npos);
}

TEST_CASE("a burst of new connections is accepted at once and without failures", "[serve]") {
  TestServer server;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 4; ++round) {
    const auto answers = at_once(48, [&](int) { return server.get("/healthz"); });
    for (const Answer& a : answers) {
      INFO("round " << round << ": " << a.error);
      CHECK(a.status == 200);
    }
  }
  // A full accept queue drops handshakes, and each round then waits for a
  // 1 s SYN-ACK retransmit (8 s here with httplib's backlog of 5).
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
}

TEST_CASE("an adapter changes the answers and batches never mix adapters", "[serve]") {
  serve::ServeOptions o = world_options();
  o.batch_ms = 50;
  TestServer server(o);
  const std::string png = scene_png_base64(0);
  const auto base = base_pipeline().embed_images(scene_image(0)).to_vector<float>();
  const auto shifted = shifted_pipeline().embed_images(scene_image(0)).to_vector<float>();
  REQUIRE(max_abs_diff(base, shifted) > 1e-3f);  // the adapter matters

  const Answer plain = server.post("/v1/embed", json{{"image_png_base64", png}});
  const Answer with = server.post("/v1/embed", json{{"image_png_base64", png}, {"adapter", "shift"}});
  REQUIRE(plain.status == 200);
  REQUIRE(with.status == 200);
  CHECK(max_abs_diff(floats(plain.json["embeddings"][0]), base) < 1e-5f);
  CHECK(max_abs_diff(floats(with.json["embeddings"][0]), shifted) < 1e-5f);
  const Answer caption = server.post("/v1/caption", json{{"image_png_base64", png}, {"adapter", "shift"}});
  CHECK(caption.json["caption"] == shifted_pipeline().caption(scene_image(0), "en")[0]);
  const Answer text = server.post("/v1/embed", json{{"text", "a red bag"}, {"adapter", "shift"}});
  CHECK(max_abs_diff(floats(text.json["embeddings"][0]), shifted_pipeline().embed_texts({"a red bag"}).to_vector<float>()) <
        1e-5f);

  // Interleaved at once: each answer is its own adapter's.
  const int n = 12;
  const auto answers = at_once(n, [&](int i) {
    json body = {{"image_png_base64", png}};
    if (i % 2) body["adapter"] = "shift";
    return server.post("/v1/embed", body);
  });
  for (int i = 0; i < n; ++i) {
    INFO("request " << i);
    REQUIRE(answers[static_cast<size_t>(i)].status == 200);
    CHECK(max_abs_diff(floats(answers[static_cast<size_t>(i)].json["embeddings"][0]), i % 2 ? shifted : base) < 1e-5f);
  }

  const Answer unknown = server.post("/v1/caption", json{{"image_png_base64", png}, {"adapter", "nope"}});
  CHECK(unknown.status == 400);
  CHECK_THAT(unknown.json["error"].get<std::string>(), Catch::Contains("\"nope\"") && Catch::Contains("loaded: shift"));
}
