// The load generator (see load_client.hpp).
#include "load_client.hpp"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "loom/core/error.hpp"

namespace loom::serve {

namespace {

using Clock = std::chrono::steady_clock;

double percentile_ms(std::vector<double>& seconds, double q) {
  if (seconds.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(seconds.size())));
  const size_t i = std::min(seconds.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<long>(i), seconds.end());
  return seconds[i] * 1000;
}

}  // namespace

LoadReport run_load(const LoadOptions& o) {
  LOOM_CHECK(o.clients >= 1 && o.seconds > 0, "load: need at least one client and a positive duration");
  std::mutex mutex;
  LoadReport report;
  std::vector<double> latencies;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&] {
      httplib::Client client(o.host, o.port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // else Nagle + delayed ACKs add ~40 ms to each small request
      client.set_read_timeout(60, 0);
      std::vector<double> mine;
      std::map<int, int64_t> statuses;
      std::string first_error;
      while (Clock::now() < stop) {
        const auto t0 = Clock::now();
        auto res = client.Post(o.path, o.body, "application/json");
        mine.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        const int status = res ? res->status : 0;
        ++statuses[status];
        if (status != 200 && first_error.empty())
          first_error = res ? "HTTP " + std::to_string(status) + ": " + res->body
                            : "no answer: " + httplib::to_string(res.error());
      }
      std::lock_guard<std::mutex> lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      for (const auto& [status, n] : statuses) report.statuses[status] += n;
      if (report.first_error.empty()) report.first_error = first_error;
    });
  }
  for (auto& t : clients) t.join();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.requests = static_cast<int64_t>(latencies.size());
  for (const auto& [status, n] : report.statuses)
    if (status != 200) report.errors += n;
  report.requests_per_second = static_cast<double>(report.requests) / report.seconds;
  report.p50_ms = percentile_ms(latencies, 0.5);
  report.p99_ms = percentile_ms(latencies, 0.99);
  return report;
}

std::string sample_request_body(const std::string& host, int port, const std::string& endpoint) {
  httplib::Client client(host, port);
  client.set_read_timeout(60, 0);
  auto res = client.Get("/v1/sample");
  LOOM_CHECK(res && res->status == 200, "load: GET http://", host, ":", port, "/v1/sample failed (",
             res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error()), ")");
  const auto sample = nlohmann::json::parse(res->body);
  if (endpoint == "caption" || endpoint == "retrieve")
    return nlohmann::json{{"image_png_base64", sample["image_png_base64"]}}.dump();
  if (endpoint == "transcribe") return nlohmann::json{{"audio_wav_base64", sample["audio_wav_base64"]}}.dump();
  if (endpoint == "embed") return nlohmann::json{{"text", "a red bag on the left"}}.dump();
  LOOM_FAIL("load: unknown endpoint '", endpoint, "' (caption, transcribe, embed or retrieve)");
}

}  // namespace loom::serve
