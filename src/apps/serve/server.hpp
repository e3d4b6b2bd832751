// loom-serve's HTTP server: the engine, the batcher and the metrics behind
// cpp-httplib's threaded server. Used by the loom-serve program and,
// in-process on an ephemeral port, by the tests.
//
//   Server server(options, log);   // loads the models (throws on errors)
//   int port = server.bind();      // binds host:port (port 0: any free port)
//   server.serve();                // answers until stop() (from any thread)
//
// serve() must have returned before the Server is destroyed.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "engine.hpp"

namespace loom::serve {

struct ServeOptions {
  EngineOptions engine;
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body_bytes = 16u << 20;  // larger bodies get 413
  double batch_ms = 5;                // batching window
  size_t max_batch = 32;              // requests per model call at most
  int threads = 32;                   // HTTP worker threads (one per open connection)
};

class Server {
 public:
  Server(const ServeOptions& options, std::function<void(const std::string&)> log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Throws loom::Error when the address cannot be bound.
  int bind();
  void serve();
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::serve
