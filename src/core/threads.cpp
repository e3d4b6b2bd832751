#include "loom/core/threads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loom/core/error.hpp"

namespace loom {

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    LOOM_FAIL("environment variable ", name, "='", v, "' is not an integer");
  }
}

int default_threads() {
  if (int n = env_int("LOOM_NUM_THREADS"); n > 0) return n;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int local_ranks = std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE"));
  return std::max(1, cores / local_ranks);
}

thread_local bool t_in_parallel = false;

// How long a thread polls before it sleeps on a condition variable: a worker
// after its last part (the next kernel usually follows within microseconds),
// the caller while the workers finish. Why: waking a thread that sleeps on a
// condition variable costs tens of microseconds on bare metal and, measured
// on the 2-core virtual machines loom is developed on, milliseconds: long
// enough that the caller had often claimed every part itself, and a 2-thread
// GEMM of 2048x576x192 ran at 1-thread speed (median 101 GFLOP/s with no
// polling, 102 with 200 us, 176 with 2 ms, 184 with 5 ms). 2 ms of polling
// costs at most that much CPU after the last kernel of a burst; within a
// training step kernels follow each other far faster. LOOM_SPIN_US
// overrides (0: never poll).
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds t{[] {
    const char* v = std::getenv("LOOM_SPIN_US");
    return (v == nullptr || *v == '\0') ? 2000 : std::max(0, std::atoi(v));
  }()};
  return t;
}

// Polls `ready` until it holds or spin_time() has passed; true when it held.
template <class Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + spin_time();
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= deadline) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return size_; }

  void resize(int threads) {
    stop();
    size_ = std::max(1, threads);
    stopping_ = false;
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { work(); });
  }

  void run(int64_t begin, int64_t end, int64_t parts, const std::function<void(int64_t, int64_t)>& fn) {
    std::unique_lock<std::mutex> lock(run_mutex_);  // one parallel_for at a time per pool
    {
      std::lock_guard<std::mutex> g(mutex_);
      fn_ = &fn;
      begin_ = begin;
      end_ = end;
      parts_ = parts;
      next_part_ = 0;
      done_parts_ = 0;
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    take_parts();
    spin_until([&] { return done_parts_.load(std::memory_order_acquire) == parts_; });
    std::unique_lock<std::mutex> g(mutex_);
    finished_.wait(g, [&] { return done_parts_ == parts_; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void stop() {
    {
      std::lock_guard<std::mutex> g(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  // Claims and runs parts until none are left.
  void take_parts() {
    while (true) {
      int64_t part;
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t lo, hi;
      {
        std::lock_guard<std::mutex> g(mutex_);
        if (fn_ == nullptr || next_part_ >= parts_) return;
        part = next_part_++;
        fn = fn_;
        const int64_t n = end_ - begin_;
        lo = begin_ + n * part / parts_;
        hi = begin_ + n * (part + 1) / parts_;
      }
      std::exception_ptr error;
      t_in_parallel = true;
      try {
        (*fn)(lo, hi);
      } catch (...) {
        error = std::current_exception();
      }
      t_in_parallel = false;
      std::lock_guard<std::mutex> g(mutex_);
      if (error && !error_) error_ = error;
      if (++done_parts_ == parts_) finished_.notify_all();
    }
  }

  void work() {
    uint64_t seen = 0;
    while (true) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || stopping_.load(); });
      {
        std::unique_lock<std::mutex> g(mutex_);
        wake_.wait(g, [&] { return stopping_ || generation_.load() != seen; });
        if (stopping_) return;
        seen = generation_.load();
      }
      take_parts();
    }
  }

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, finished_;
  // Changed under mutex_; atomic so that polling threads may read them without it.
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{0};  // bumped for each parallel_for
  std::atomic<int64_t> done_parts_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t begin_ = 0, end_ = 0, parts_ = 0, next_part_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

SerialKernels::SerialKernels() : previous_(t_in_parallel) { t_in_parallel = true; }
SerialKernels::~SerialKernels() { t_in_parallel = previous_; }

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(n > 0 ? n : default_threads()); }

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int threads = t_in_parallel ? 1 : num_threads();
  const int64_t parts = std::min<int64_t>(threads, (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
  if (parts <= 1) {
    fn(begin, end);
    return;
  }
  pool().run(begin, end, parts, fn);
}

}  // namespace loom
