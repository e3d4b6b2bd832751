// What loom-serve reports at GET /metrics, in the Prometheus text format
// (version 0.0.4), so a Prometheus server can scrape it and a person can
// read it:
//
//   loom_serve_requests_total{endpoint,status}    counter: responses sent
//   loom_serve_latency_seconds{endpoint,quantile} summary: p50 and p99 over the
//                                                 endpoint's last 4096 requests,
//                                                 with _sum and _count over all
//   loom_serve_batches_total{endpoint,size}       counter: model calls by the
//                                                 number of requests batched
//
// `endpoint` is a route path ("/v1/caption"); requests for unknown paths
// count as "other". Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace loom::serve {

class Metrics {
 public:
  static constexpr size_t kLatencyWindow = 4096;

  void count_response(const std::string& endpoint, int status);
  void observe_latency(const std::string& endpoint, double seconds);
  void observe_batch(const std::string& endpoint, size_t requests);
  std::string prometheus() const;

 private:
  struct Latency {
    std::vector<double> recent;  // ring of the last kLatencyWindow
    size_t next = 0;
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;
  std::map<std::string, Latency> latency_;
  std::map<std::pair<std::string, size_t>, uint64_t> batches_;
};

}  // namespace loom::serve
