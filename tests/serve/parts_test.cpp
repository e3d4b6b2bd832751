// The server's parts on their own: base64, the batcher (keys, window, size
// cap, failure isolation) and the metrics page.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "serve/base64.hpp"
#include "serve/batcher.hpp"
#include "serve/metrics.hpp"

using namespace loom;
using namespace loom::serve;
using Catch::Contains;

TEST_CASE("base64 round-trips every length and decodes leniently laid out text", "[serve]") {
  for (size_t n = 0; n < 20; ++n) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 250);
    const std::string text = base64_encode(bytes);
    CHECK(text.size() == (n + 2) / 3 * 4);
    CHECK(base64_decode(text, "f") == bytes);
  }
  CHECK(base64_encode(std::string_view("hello")) == "aGVsbG8=");
  const std::vector<uint8_t> hello = {'h', 'e', 'l', 'l', 'o'};
  CHECK(base64_decode("aGVs\nbG8=\r\n", "f") == hello);
  CHECK(base64_decode("aGVsbG8", "f") == hello);  // padding left off
  CHECK(base64_decode("", "f").empty());
}

TEST_CASE("base64 names the field and the offending position", "[serve]") {
  CHECK_THROWS_WITH(base64_decode("aGV$bG8=", "image_png_base64"),
                    Contains("image_png_base64: invalid base64: '$' at offset 3"));
  CHECK_THROWS_WITH(base64_decode("aGVsb", "f"), Contains("lone final character"));
  CHECK_THROWS_WITH(base64_decode("aG=Vs", "f"), Contains("data after '=' padding"));
  CHECK_THROWS_WITH(base64_decode("aGVsbG8==", "f"), Contains("wrong '=' padding"));
  CHECK_THROWS_WITH(base64_decode("aGVs\x01", "f"), Contains("byte 0x01"));
}

namespace {

Request job(Endpoint e, const std::string& adapter, const std::string& tag) {
  Request r;
  r.endpoint = e;
  r.adapter = adapter;
  r.prompt = tag;  // what the fake runner answers
  return r;
}

struct Recorder {
  std::mutex mutex;
  std::vector<std::pair<BatchKey, std::vector<std::string>>> batches;
  Batcher::Runner runner() {
    return [this](const BatchKey& key, const std::vector<const Request*>& requests) {
      std::vector<std::string> tags;
      std::vector<nlohmann::json> out;
      for (const Request* r : requests) {
        if (r->prompt == "bad") throw std::runtime_error("bad job");
        tags.push_back(r->prompt);
        out.push_back(r->prompt + "!");
      }
      std::lock_guard<std::mutex> lock(mutex);
      batches.emplace_back(key, tags);
      return out;
    };
  }
};

}  // namespace

TEST_CASE("the batcher groups jobs of one key within the window and never mixes keys", "[serve]") {
  Recorder rec;
  std::vector<std::future<nlohmann::json>> done;
  {
    Batcher batcher(rec.runner(), std::chrono::milliseconds(300), 32);
    // All submitted well within the window: a1 a2 b1 a3 b2 c1 (c: another endpoint).
    for (const auto& [adapter, tag] : std::vector<std::pair<std::string, std::string>>{
             {"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"a", "a3"}, {"b", "b2"}})
      done.push_back(batcher.submit(job(Endpoint::embed, adapter, tag)));
    done.push_back(batcher.submit(job(Endpoint::caption, "a", "c1")));
    for (auto& f : done) f.wait();
  }
  CHECK(done[0].get() == "a1!");
  CHECK(done[5].get() == "c1!");
  REQUIRE(rec.batches.size() == 3);
  CHECK(rec.batches[0].first.adapter == "a");
  CHECK(rec.batches[0].second == std::vector<std::string>{"a1", "a2", "a3"});
  CHECK(rec.batches[1].first.adapter == "b");
  CHECK(rec.batches[1].second == std::vector<std::string>{"b1", "b2"});
  CHECK(rec.batches[2].first.endpoint == Endpoint::caption);
  CHECK(rec.batches[2].second == std::vector<std::string>{"c1"});
}

TEST_CASE("the batcher caps batches and fails only the job that fails", "[serve]") {
  Recorder rec;
  std::vector<size_t> observed;
  Batcher batcher(rec.runner(), std::chrono::milliseconds(200), 2,
                  [&](const BatchKey&, size_t n) { observed.push_back(n); });
  std::vector<std::future<nlohmann::json>> done;
  for (const char* tag : {"x1", "bad", "x2", "x3", "x4"}) done.push_back(batcher.submit(job(Endpoint::embed, "", tag)));
  for (auto& f : done) f.wait();
  CHECK(done[0].get() == "x1!");
  CHECK_THROWS_WITH(done[1].get(), "bad job");
  CHECK(done[2].get() == "x2!");
  CHECK(done[3].get() == "x3!");
  CHECK(done[4].get() == "x4!");
  for (const auto& [key, tags] : rec.batches) CHECK(tags.size() <= 2);
  // x1+bad fails, then each retried alone; x2+x3; x4.
  CHECK(observed == std::vector<size_t>{2, 1, 1, 2, 1});
}

TEST_CASE("the metrics page is Prometheus text with counts, quantiles and batch sizes", "[serve]") {
  Metrics m;
  for (int i = 1; i <= 100; ++i) m.observe_latency("/v1/embed", i / 1000.0);
  m.count_response("/v1/embed", 200);
  m.count_response("/v1/embed", 200);
  m.count_response("other", 404);
  m.observe_batch("/v1/embed", 3);
  m.observe_batch("/v1/embed", 3);
  m.observe_batch("/v1/embed", 1);
  const std::string page = m.prometheus();
  for (const char* line : {"# TYPE loom_serve_requests_total counter",
                           "loom_serve_requests_total{endpoint=\"/v1/embed\",status=\"200\"} 2\n",
                           "loom_serve_requests_total{endpoint=\"other\",status=\"404\"} 1\n",
                           "# TYPE loom_serve_latency_seconds summary",
                           "loom_serve_latency_seconds{endpoint=\"/v1/embed\",quantile=\"0.5\"} 0.05\n",
                           "loom_serve_latency_seconds{endpoint=\"/v1/embed\",quantile=\"0.99\"} 0.099\n",
                           "loom_serve_latency_seconds_count{endpoint=\"/v1/embed\"} 100\n",
                           "loom_serve_latency_seconds_sum{endpoint=\"/v1/embed\"} 5.05\n",
                           "loom_serve_batches_total{endpoint=\"/v1/embed\",size=\"1\"} 1\n",
                           "loom_serve_batches_total{endpoint=\"/v1/embed\",size=\"3\"} 2\n"})
    CHECK_THAT(page, Contains(line));
}
