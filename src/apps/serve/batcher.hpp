// Serialises model calls and batches concurrent requests.
//
// The HTTP server answers on a thread pool, but the model is not
// thread-safe. Handlers submit jobs here; one worker thread runs them. Jobs
// with the same key (endpoint, adapter, language) that arrive within the
// batch window of the oldest waiting one run as one batch (one pipeline
// call), up to max_jobs; jobs with another key wait for a later batch, so a
// batch never mixes adapters or languages. Jobs queued while the worker is
// busy join the next batch at once. When a batch throws, each of its jobs is
// retried alone, so one bad job fails only its own request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "requests.hpp"

namespace loom::serve {

struct BatchKey {
  Endpoint endpoint = Endpoint::embed;
  std::string adapter;   // "" = the base model
  std::string language;  // "" where the endpoint takes none
  bool operator==(const BatchKey&) const = default;
};
BatchKey batch_key(const Request& r);

class Batcher {
 public:
  // Answers one response body per job, in order. Called on the worker thread only.
  using Runner = std::function<std::vector<nlohmann::json>(const BatchKey&, const std::vector<const Request*>&)>;
  // Told the key and the number of jobs of every batch run (metrics).
  using Observer = std::function<void(const BatchKey&, size_t jobs)>;

  Batcher(Runner runner, std::chrono::microseconds window, size_t max_jobs, Observer observer = {});
  ~Batcher();  // pending jobs fail with "shutting down"
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // The response body, or the runner's exception.
  std::future<nlohmann::json> submit(Request request);

 private:
  struct Job {
    BatchKey key;
    Request request;
    std::chrono::steady_clock::time_point arrived;
    std::promise<nlohmann::json> done;
  };
  void work();
  std::vector<Job> take_batch(std::unique_lock<std::mutex>& lock);
  void run(std::vector<Job>& batch);

  Runner runner_;
  std::chrono::microseconds window_;
  size_t max_jobs_;
  Observer observer_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace loom::serve
