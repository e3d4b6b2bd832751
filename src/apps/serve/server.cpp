// The HTTP server around the engine (see server.hpp).
#include "server.hpp"

#include <httplib.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "batcher.hpp"
#include "loom/core/error.hpp"
#include "metrics.hpp"
#include "routes.hpp"

namespace loom::serve {

struct Server::Impl {
  Impl(const ServeOptions& o, const std::function<void(const std::string&)>& log)
      : options(o),
        engine(o.engine, log),
        batcher([this](const BatchKey& key, const std::vector<const Request*>& r) { return engine.run(key, r); },
                std::chrono::microseconds(static_cast<int64_t>(o.batch_ms * 1000)), o.max_batch,
                [this](const BatchKey& key, size_t n) { metrics.observe_batch(endpoint_path(key.endpoint), n); }) {}

  ServeOptions options;
  Metrics metrics;
  Engine engine;
  Batcher batcher;
  httplib::Server http;  // destroyed first: no handler runs once the batcher goes
  int port = -1;
  int listen_socket = -1;
  std::atomic<bool> serving{false}, stop_requested{false};
};

Server::Server(const ServeOptions& options, std::function<void(const std::string&)> log)
    : impl_(std::make_unique<Impl>(options, log)) {
  LOOM_CHECK(options.threads >= 1, "loom-serve: --threads must be at least 1");
  httplib::Server& http = impl_->http;
  const size_t threads = static_cast<size_t>(options.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_keep_alive_max_count(1000);
  http.set_tcp_nodelay(true);
  http.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    impl_->listen_socket = sock;
  });
  add_routes(http, impl_->engine, impl_->batcher, impl_->metrics, options.max_body_bytes);
  add_error_bodies_and_counts(http, impl_->metrics, options.max_body_bytes);
}

Server::~Server() { stop(); }

int Server::bind() {
  const ServeOptions& o = impl_->options;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
  } else {
    impl_->port = impl_->http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  LOOM_CHECK(impl_->port > 0, "loom-serve: cannot listen on ", o.host, ":", o.port,
             " (address in use, or not an address of this machine)");
  // httplib listens with a backlog of 5 (fixed in Debian's library): a burst
  // of new connections overflows it, and the dropped handshakes cost 1 s
  // retransmits and failed reads. listen() again raises the backlog.
  LOOM_CHECK(::listen(impl_->listen_socket, SOMAXCONN) == 0, "loom-serve: listen() failed: ", std::strerror(errno));
  return impl_->port;
}

void Server::serve() {
  if (impl_->stop_requested) return;
  impl_->serving = true;
  impl_->http.listen_after_bind();
  impl_->serving = false;
}

void Server::stop() {
  impl_->stop_requested = true;
  // serve() may be between its check and httplib's start: wait for it a little.
  for (int i = 0; i < 2000 && impl_->serving && !impl_->http.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
}

int Server::port() const { return impl_->port; }

}  // namespace loom::serve
