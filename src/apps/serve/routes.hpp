// The routes of loom-serve: the JSON API (POST /v1/embed, /v1/retrieve,
// /v1/caption, /v1/transcribe, /v1/generate), GET /healthz, GET /metrics,
// GET /v1/sample (the demo samples) and GET / (the web page); plus the JSON
// bodies of errors that httplib answers itself (404, 405, 413, ...).
#pragma once

#include <cstddef>
#include <string>

namespace httplib {
class Server;
}

namespace loom::serve {

class Engine;
class Batcher;
class Metrics;

void add_routes(httplib::Server& http, Engine& engine, Batcher& batcher, Metrics& metrics, size_t max_body_bytes);
// Fills the body of error responses that have none, turns 404 on a known
// path into 405, and counts every response.
void add_error_bodies_and_counts(httplib::Server& http, Metrics& metrics, size_t max_body_bytes);

// The metrics label of a request path: the route, or "other".
std::string endpoint_label(const std::string& path);

}  // namespace loom::serve
