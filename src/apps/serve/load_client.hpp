// A load generator for loom-serve: `clients` threads, each with its own
// keep-alive connection, post the same request back to back for `seconds`
// and time every answer. Used by the loom-serve-load program and the
// serve_load test.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace loom::serve {

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int clients = 16;
  double seconds = 10;
  std::string path = "/v1/caption";
  std::string body;  // JSON
};

struct LoadReport {
  int64_t requests = 0;  // answered or failed
  int64_t errors = 0;    // no answer, or a status other than 200
  double seconds = 0;    // measured wall time
  double requests_per_second = 0;
  double p50_ms = 0, p99_ms = 0;  // latency of all requests
  std::map<int, int64_t> statuses;  // 0: no answer (connection error)
  std::string first_error;
};

LoadReport run_load(const LoadOptions& options);

// A request body for `endpoint` (caption, transcribe, embed, retrieve)
// built from the server's demo samples (GET /v1/sample).
std::string sample_request_body(const std::string& host, int port, const std::string& endpoint);

}  // namespace loom::serve
