// loom-serve-load [--host 127.0.0.1] [--port 8080] [--clients 16] [--seconds 10]
//                 [--endpoint caption|transcribe|embed|retrieve] [--body FILE]
//
// Loads a running loom-serve: N concurrent keep-alive clients post the same
// request back to back for T seconds on one endpoint (the body is built from
// the server's demo sample unless --body gives one), then prints requests/s,
// latency p50 and p99 and the error count, and exits 1 when any request
// failed.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "loom/core/error.hpp"
#include "serve/load_client.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-serve-load [--host 127.0.0.1] [--port 8080] [--clients 16] [--seconds 10]\n"
    "                       [--endpoint caption|transcribe|embed|retrieve] [--body FILE]\n";

int positive(const char* flag, const std::string& text) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < 1) throw loom::cli::UsageError{std::string(flag) + " must be a positive integer (got '" + text + "')"};
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-serve-load", [&] {
    loom::serve::LoadOptions o;
    std::string endpoint = "caption", body_file;
    for (int i = 1; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (!std::strcmp(a, "--host")) {
        o.host = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--port")) {
        o.port = positive("--port", loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--clients")) {
        o.clients = positive("--clients", loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--seconds")) {
        o.seconds = positive("--seconds", loom::cli::take_value(argc, argv, i));
      } else if (!std::strcmp(a, "--endpoint")) {
        endpoint = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--body")) {
        body_file = loom::cli::take_value(argc, argv, i);
      } else {
        throw loom::cli::UsageError{std::string("unknown argument '") + a + "'\n" + kUsage};
      }
    }
    o.path = "/v1/" + endpoint;
    if (body_file.empty()) {
      o.body = loom::serve::sample_request_body(o.host, o.port, endpoint);
    } else {
      std::ifstream in(body_file);
      LOOM_CHECK(in.good(), "--body: cannot read '", body_file, "'");
      o.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const auto r = loom::serve::run_load(o);
    nlohmann::json statuses = nlohmann::json::object();
    for (const auto& [status, n] : r.statuses) statuses[status ? std::to_string(status) : "no answer"] = n;
    std::printf("%s: %d clients for %.1f s: %lld requests, %.1f requests/s, p50 %.2f ms, p99 %.2f ms, %lld errors\n",
                o.path.c_str(), o.clients, r.seconds, static_cast<long long>(r.requests), r.requests_per_second,
                r.p50_ms, r.p99_ms, static_cast<long long>(r.errors));
    std::printf("statuses: %s\n", statuses.dump().c_str());
    if (r.errors) std::printf("first error: %s\n", r.first_error.c_str());
    return r.errors ? 1 : 0;
  });
}
