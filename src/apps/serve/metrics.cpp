// Request, latency and batch metrics in the Prometheus text format (see metrics.hpp).
#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace loom::serve {

namespace {

// The q-quantile of `v` (nearest rank), v not empty.
double quantile(std::vector<double> v, double q) {
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  const size_t i = std::min(v.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

}  // namespace

void Metrics::count_response(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++responses_[{endpoint, status}];
}

void Metrics::observe_latency(const std::string& endpoint, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Latency& l = latency_[endpoint];
  if (l.recent.size() < kLatencyWindow) {
    l.recent.push_back(seconds);
  } else {
    l.recent[l.next] = seconds;
    l.next = (l.next + 1) % kLatencyWindow;
  }
  ++l.count;
  l.sum += seconds;
}

void Metrics::observe_batch(const std::string& endpoint, size_t requests) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++batches_[{endpoint, requests}];
}

std::string Metrics::prometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out += "# HELP loom_serve_requests_total Responses sent, by endpoint and HTTP status.\n";
  out += "# TYPE loom_serve_requests_total counter\n";
  for (const auto& [key, n] : responses_)
    out += "loom_serve_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(n) + "\n";
  out += "# HELP loom_serve_latency_seconds Request latency; quantiles over the last " +
         std::to_string(kLatencyWindow) + " requests of the endpoint.\n";
  out += "# TYPE loom_serve_latency_seconds summary\n";
  for (const auto& [endpoint, l] : latency_) {
    const std::string label = "endpoint=\"" + endpoint + "\"";
    for (const double q : {0.5, 0.99})
      out += "loom_serve_latency_seconds{" + label + ",quantile=\"" + number(q) + "\"} " +
             number(quantile(l.recent, q)) + "\n";
    out += "loom_serve_latency_seconds_sum{" + label + "} " + number(l.sum) + "\n";
    out += "loom_serve_latency_seconds_count{" + label + "} " + std::to_string(l.count) + "\n";
  }
  out += "# HELP loom_serve_batches_total Model calls, by endpoint and the number of requests batched into them.\n";
  out += "# TYPE loom_serve_batches_total counter\n";
  for (const auto& [key, n] : batches_)
    out += "loom_serve_batches_total{endpoint=\"" + key.first + "\",size=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  return out;
}

}  // namespace loom::serve
