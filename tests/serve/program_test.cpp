// The loom-serve program itself: it serves a run on the port it prints,
// stops cleanly on SIGTERM, and explains bad command lines.
#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "world.hpp"

using namespace loom::serve_test;
using Catch::Contains;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `command` through the shell; returns its exit status and output (stdout and stderr).
std::pair<int, std::string> run(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("the loom-serve program serves a run on the port it prints and stops on SIGTERM", "[serve]") {
  const World& w = world();
  const std::string log = (std::filesystem::temp_directory_path() / ("loom-serve-program-" + std::to_string(getpid()) + ".log")).string();
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    const std::string adapter = "shift=" + w.adapter;
    execl(LOOM_SERVE_BIN, LOOM_SERVE_BIN, w.run.c_str(), "--port", "0", "--adapter", adapter.c_str(), "--batch-ms", "2",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)/");
  for (int i = 0; i < 1200 && port == 0; ++i) {
    std::smatch m;
    const std::string text = read_file(log);
    if (std::regex_search(text, m, listening)) port = std::stoi(m[1]);
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(read_file(log));
  REQUIRE(port > 0);
  httplib::Client client("127.0.0.1", port);
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK_THAT(health->body, Contains("\"adapters\":[\"shift\"]"));
  auto embed = client.Post("/v1/embed", "{\"text\": \"a red bag\"}", "application/json");
  REQUIRE(embed);
  CHECK(embed->status == 200);

  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const std::string text = read_file(log);
  CHECK_THAT(text, Contains("adapter shift from") && Contains("stopping on SIGTERM") && Contains("loom-serve: stopped"));
  std::filesystem::remove(log);
}

TEST_CASE("loom-serve explains bad command lines and missing runs", "[serve]") {
  const std::string bin = LOOM_SERVE_BIN;
  const World& w = world();
  auto [code, out] = run(bin + " " + w.run + " --adapter nonsense");
  CHECK(code == 2);
  CHECK_THAT(out, Contains("--adapter takes NAME=DIR (got 'nonsense')"));
  std::tie(code, out) = run(bin + " " + w.run + " --port 70000");
  CHECK(code == 2);
  CHECK_THAT(out, Contains("--port must be"));
  std::tie(code, out) = run(bin);
  CHECK(code == 2);
  CHECK_THAT(out, Contains("no run directory given") && Contains("usage: loom-serve"));
  std::tie(code, out) = run(bin + " /nonexistent/run --port 0");
  CHECK(code == 1);
  CHECK_THAT(out, Contains("/nonexistent/run"));
  std::tie(code, out) = run(bin + " " + w.run + " --port 0 --adapter x=/nonexistent/adapter");
  CHECK(code == 1);
  CHECK_THAT(out, Contains("/nonexistent/adapter"));
  std::tie(code, out) = run(bin + " " + w.run + " --port 0 --generator " + w.run);
  CHECK(code == 1);
  CHECK_THAT(out, Contains("is not a GPT run"));
}
