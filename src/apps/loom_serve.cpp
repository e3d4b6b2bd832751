// loom-serve RUN_DIR [--adapter NAME=DIR]... [--generator GPT_RUN_DIR] [--index CAPTIONS.txt]
//            [--host 127.0.0.1] [--port 8080] [--max-body-mb 16] [--batch-ms 5] [--max-batch 32] [--threads 32]
//
// Serves a trained omni-modal run over HTTP/JSON: embeddings, retrieval,
// captions, transcripts (and text generation with a GPT run), a metrics
// page and a small web page. See docs/serving.md. Stops cleanly on SIGINT
// or SIGTERM.
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "cli.hpp"
#include "serve/server.hpp"

namespace {

constexpr const char* kUsage =
    "usage: loom-serve RUN_DIR|CHECKPOINT_DIR [--adapter NAME=DIR]... [--generator GPT_RUN_DIR]\n"
    "                  [--index CAPTIONS.txt] [--host 127.0.0.1] [--port 8080] [--max-body-mb 16]\n"
    "                  [--batch-ms 5] [--max-batch 32] [--threads 32]\n"
    "  --adapter    a LoRA adapter directory written by nn::save_adapter; requests pick it with \"adapter\": NAME\n"
    "  --generator  a GPT run for POST /v1/generate\n"
    "  --index      captions for POST /v1/retrieve, one per line (default: the evaluation captions of the\n"
    "               run's dataset, when present)\n"
    "  --port       0 picks a free port (printed at start)\n"
    "  --max-body-mb  larger request bodies get 413\n"
    "  --batch-ms   how long a request waits for others to share its model call\n"
    "  --max-batch  requests per model call at most\n"
    "  --threads    HTTP worker threads (each serves one open connection)\n";

double number(const char* flag, const std::string& text, double lo, double hi) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(v >= lo && v <= hi)) {
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    throw loom::cli::UsageError{std::string(flag) + " must be a number in " + range + " (got '" + text + "')"};
  }
  return v;
}

int integer(const char* flag, const std::string& text, int lo, int hi) {
  const double v = number(flag, text, lo, hi);
  if (v != static_cast<int>(v)) throw loom::cli::UsageError{std::string(flag) + " must be an integer (got '" + text + "')"};
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-serve", [&] {
    loom::serve::ServeOptions o;
    for (int i = 1; i < argc; ++i) {
      const char* a = argv[i];
      if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (!std::strcmp(a, "--adapter")) {
        const std::string v = loom::cli::take_value(argc, argv, i);
        const size_t eq = v.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
          throw loom::cli::UsageError{"--adapter takes NAME=DIR (got '" + v + "')"};
        o.engine.adapters.emplace_back(v.substr(0, eq), v.substr(eq + 1));
      } else if (!std::strcmp(a, "--generator")) {
        o.engine.generator = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--index")) {
        o.engine.index_file = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--host")) {
        o.host = loom::cli::take_value(argc, argv, i);
      } else if (!std::strcmp(a, "--port")) {
        o.port = integer("--port", loom::cli::take_value(argc, argv, i), 0, 65535);
      } else if (!std::strcmp(a, "--max-body-mb")) {
        o.max_body_bytes = static_cast<size_t>(number("--max-body-mb", loom::cli::take_value(argc, argv, i), 0.001, 4096) * (1 << 20));
      } else if (!std::strcmp(a, "--batch-ms")) {
        o.batch_ms = number("--batch-ms", loom::cli::take_value(argc, argv, i), 0, 10000);
      } else if (!std::strcmp(a, "--max-batch")) {
        o.max_batch = static_cast<size_t>(integer("--max-batch", loom::cli::take_value(argc, argv, i), 1, 4096));
      } else if (!std::strcmp(a, "--threads")) {
        o.threads = integer("--threads", loom::cli::take_value(argc, argv, i), 1, 1024);
      } else if (a[0] == '-') {
        throw loom::cli::UsageError{std::string("unknown option '") + a + "'\n" + kUsage};
      } else if (o.engine.run.empty()) {
        o.engine.run = a;
      } else {
        throw loom::cli::UsageError{std::string("more than one run given ('") + a + "')\n" + kUsage};
      }
    }
    if (o.engine.run.empty()) throw loom::cli::UsageError{std::string("no run directory given\n") + kUsage};

    // SIGINT and SIGTERM go to one waiting thread (blocked everywhere else,
    // so every thread started from here inherits the mask).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto log = [](const std::string& line) { std::fprintf(stderr, "loom-serve: %s\n", line.c_str()); };
    loom::serve::Server server(o, log);
    const int port = server.bind();
    log("listening on http://" + o.host + ":" + std::to_string(port) + "/");
    std::atomic<bool> served{false};
    std::thread waiter([&] {
      int signal = 0;
      sigwait(&stop_signals, &signal);
      if (served) return;  // woken below after serve() returned by itself
      log(std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
      server.stop();
    });
    server.serve();
    served = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    log("stopped");
    return 0;
  });
}
