// Request handling: parse, batch, answer; and JSON error bodies (see routes.hpp).
#include "routes.hpp"

#include <httplib.h>

#include <algorithm>
#include <chrono>

#include "api_error.hpp"
#include "base64.hpp"
#include "batcher.hpp"
#include "engine.hpp"
#include "metrics.hpp"
#include "web_page.hpp"

namespace loom::serve {

namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";
const std::vector<std::string> kGetPaths = {"/", "/healthz", "/metrics", "/v1/sample"};

std::vector<std::string> post_paths() {
  std::vector<std::string> out;
  for (Endpoint e : kEndpoints) out.push_back(endpoint_path(e));
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void answer_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(dump({{"error", message}}), kJson);
}

std::string too_large(size_t max_body_bytes) {
  return "the body is larger than the limit of " + std::to_string(max_body_bytes) +
         " bytes (loom-serve --max-body-mb)";
}

// Runs `handle`, answering errors as JSON and timing the request.
template <class Handle>
void timed(Metrics& metrics, const std::string& label, httplib::Response& res, Handle handle) {
  const auto start = std::chrono::steady_clock::now();
  try {
    handle();
  } catch (const ApiError& e) {
    answer_error(res, e.status, e.what());
  } catch (const std::exception& e) {
    answer_error(res, 500, std::string("internal error: ") + e.what());
  }
  metrics.observe_latency(label, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

template <class Handle>
httplib::Server::Handler timed_get(Metrics& metrics, const std::string& label, Handle handle) {
  return [&metrics, label, handle](const httplib::Request& req, httplib::Response& res) {
    timed(metrics, label, res, [&] { handle(req, res); });
  };
}

// The whole body, whatever its Content-Type (httplib would parse a
// form-encoded one, and refuses those over 8 KiB).
std::string read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read,
                      size_t max_body_bytes) {
  if (req.is_multipart_form_data()) {
    // Read it anyway, so that the connection can carry the next request.
    read([](const httplib::MultipartFormData&) { return true; }, [](const char*, size_t) { return true; });
    throw ApiError(415, "send the request as a JSON body (Content-Type: application/json), not as multipart form data");
  }
  std::string body;
  const bool complete = read([&](const char* data, size_t n) {
    body.append(data, n);
    return true;
  });
  if (!complete) throw res.status == 413 ? ApiError(413, too_large(max_body_bytes)) : bad_request("incomplete body");
  return body;
}

std::string list(const std::vector<std::string>& paths, const char* method) {
  std::string out;
  for (const auto& p : paths) out += (out.empty() ? "" : ", ") + std::string(method) + " " + p;
  return out;
}

}  // namespace

std::string endpoint_label(const std::string& path) {
  for (const auto& p : kGetPaths)
    if (p == path) return p;
  for (const auto& p : post_paths())
    if (p == path) return p;
  return "other";
}

void add_routes(httplib::Server& http, Engine& engine, Batcher& batcher, Metrics& metrics, size_t max_body_bytes) {
  for (Endpoint e : kEndpoints) {
    http.Post(endpoint_path(e), [&, e, max_body_bytes](const httplib::Request& req, httplib::Response& res,
                                                       const httplib::ContentReader& read) {
      timed(metrics, endpoint_path(e), res, [&] {
        Request request = parse_request(e, read_body(req, res, read, max_body_bytes), engine.context());
        res.status = 200;
        res.set_content(dump(batcher.submit(std::move(request)).get()), kJson);
      });
    });
  }
  http.Get("/healthz", timed_get(metrics, "/healthz", [&engine](const httplib::Request&, httplib::Response& res) {
             res.set_content(dump(engine.health()), kJson);
           }));
  http.Get("/metrics", timed_get(metrics, "/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
             res.set_content(metrics.prometheus(), "text/plain; version=0.0.4; charset=utf-8");
           }));
  http.Get("/v1/sample", timed_get(metrics, "/v1/sample", [&engine](const httplib::Request&, httplib::Response& res) {
             const DemoSamples& s = engine.samples();
             res.set_content(dump({{"image_png_base64", base64_encode(s.png)},
                                   {"audio_wav_base64", base64_encode(s.wav)},
                                   {"source", s.source}}),
                             kJson);
           }));
  http.Get("/", timed_get(metrics, "/", [](const httplib::Request&, httplib::Response& res) {
             res.set_content(web_page(), "text/html; charset=utf-8");
           }));
}

void add_error_bodies_and_counts(httplib::Server& http, Metrics& metrics, size_t max_body_bytes) {
  const httplib::Server::HandlerWithResponse fill = [max_body_bytes](const httplib::Request& req,
                                                                     httplib::Response& res) {
    const auto posts = post_paths();
    const bool get_path = std::find(kGetPaths.begin(), kGetPaths.end(), req.path) != kGetPaths.end();
    const bool post_path = std::find(posts.begin(), posts.end(), req.path) != posts.end();
    if (res.status == 404 && (get_path || post_path)) {
      res.status = 405;
      res.set_header("Allow", get_path ? "GET, HEAD" : "POST");
      res.body.clear();
    }
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // a handler's own error
    std::string message;
    switch (res.status) {
      case 404:
        message = "no such endpoint: " + req.method + " " + req.path + " (endpoints: " + list(kGetPaths, "GET") +
                  ", " + list(posts, "POST") + ")";
        break;
      case 405:
        message = "method " + req.method + " is not allowed on " + req.path + " (use " +
                  (get_path ? "GET" : "POST") + ")";
        break;
      case 413: message = too_large(max_body_bytes); break;
      case 400: message = "bad HTTP request"; break;
      default: message = "HTTP status " + std::to_string(res.status);
    }
    answer_error(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  };
  http.set_error_handler(fill);
  // Counted before the response is written (httplib's logger runs after), so
  // a client that has its answer already finds it on /metrics.
  http.set_post_routing_handler([&metrics](const httplib::Request& req, httplib::Response& res) {
    metrics.count_response(endpoint_label(req.path), res.status);
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    answer_error(res, 500, "internal error");
  });
}

}  // namespace loom::serve
