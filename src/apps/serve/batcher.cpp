// The batching worker (see batcher.hpp).
#include "batcher.hpp"

#include <exception>
#include <stdexcept>

namespace loom::serve {

BatchKey batch_key(const Request& r) { return {r.endpoint, r.adapter, r.language}; }

Batcher::Batcher(Runner runner, std::chrono::microseconds window, size_t max_jobs, Observer observer)
    : runner_(std::move(runner)), window_(window), max_jobs_(max_jobs < 1 ? 1 : max_jobs),
      observer_(std::move(observer)), worker_([this] { work(); }) {}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
  for (auto& job : queue_)
    job.done.set_exception(std::make_exception_ptr(std::runtime_error("the server is shutting down")));
}

std::future<nlohmann::json> Batcher::submit(Request request) {
  Job job{batch_key(request), std::move(request), std::chrono::steady_clock::now(), {}};
  auto future = job.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw std::runtime_error("the server is shutting down");
    queue_.push_back(std::move(job));
  }
  wake_.notify_all();
  return future;
}

std::vector<Batcher::Job> Batcher::take_batch(std::unique_lock<std::mutex>& lock) {
  std::vector<Job> batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  const BatchKey key = batch.front().key;
  const auto deadline = batch.front().arrived + window_;
  for (;;) {
    for (auto it = queue_.begin(); it != queue_.end() && batch.size() < max_jobs_;) {
      if (it->key == key) {
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (batch.size() >= max_jobs_ || stopping_ || std::chrono::steady_clock::now() >= deadline) return batch;
    wake_.wait_until(lock, deadline);
  }
}

void Batcher::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto batch = take_batch(lock);
    lock.unlock();
    run(batch);
    lock.lock();
  }
}

void Batcher::run(std::vector<Job>& batch) {
  auto attempt = [&](size_t first, size_t count) {
    std::vector<const Request*> requests;
    for (size_t i = first; i < first + count; ++i) requests.push_back(&batch[i].request);
    if (observer_) observer_(batch[first].key, count);
    auto bodies = runner_(batch[first].key, requests);
    if (bodies.size() != count) throw std::logic_error("batch runner answered the wrong number of jobs");
    for (size_t i = 0; i < count; ++i) batch[first + i].done.set_value(std::move(bodies[i]));
  };
  try {
    attempt(0, batch.size());
    return;
  } catch (...) {
    if (batch.size() == 1) {
      batch[0].done.set_exception(std::current_exception());
      return;
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    try {
      attempt(i, 1);
    } catch (...) {
      batch[i].done.set_exception(std::current_exception());
    }
  }
}

}  // namespace loom::serve
