// How the SIMT emulator of simt.cuh interleaves a block's threads.
//
// `concurrent` (the default) runs every thread of a block as a free OS thread,
// as a GPU does. The interleavings it produces are whatever the host's
// scheduler happens to pick, so a race (two threads touching one location
// between the same pair of barriers, one of them writing) may pass every run.
//
// The two serial schedules make races show. A block's threads run one at a
// time (as fibers on the launching thread); a thread runs until it reaches a
// barrier (sync_block, sync_warp, a shuffle, a wmma operation, which are
// warp-collective in CUDA) or returns, then hands over to the next thread
// that is ready. When the last thread arrives at a barrier, the threads
// waiting there become ready, ahead of the rest (depth first: a warp that
// passes a warp barrier runs on until it reaches a block barrier).
// `serial_ascending` readies them in increasing thread order, and runs the
// grid's blocks in increasing order; `serial_descending` reverses both. For
// two threads that race within one barrier interval, one schedule runs the
// writer first and the other runs it last, so the reader sees different
// values; a warp running on ahead overwrites what another warp has yet to
// read; a block relying on another block's writes in the same launch reads
// them too early. Each schedule is a legal execution of a correct CUDA kernel
// (threads of a warp have no implied lockstep since Volta, and blocks no
// order), so a correct kernel gives the same result under every schedule, up
// to the order in which float atomics add.
//
// A serial schedule also names deadlocks instead of hanging: when no thread
// is ready and some have not returned (a thread returned before a
// sync_block its block still waits at, or lanes diverged around a
// sync_warp), the emulator stops with a message saying where the threads
// wait.
//
// The schedule is chosen by the environment variable LOOM_SIMT_SCHEDULE
// (concurrent, serial_ascending, serial_descending), read at the first
// launch, or for a scope by ScheduleGuard.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define LOOM_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOM_SIMT_ASAN 1
#endif
#endif
#ifdef LOOM_SIMT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace loom::simt {
inline namespace host_emulation {

enum class Schedule { concurrent, serial_ascending, serial_descending };

namespace detail {

[[noreturn]] inline void fault(const char* what) {
  std::fprintf(stderr, "simt emulator: %s\n", what);
  std::abort();
}

inline Schedule schedule_from_environment() {
  const char* name = std::getenv("LOOM_SIMT_SCHEDULE");
  if (name == nullptr || *name == '\0' || std::strcmp(name, "concurrent") == 0) return Schedule::concurrent;
  if (std::strcmp(name, "serial_ascending") == 0) return Schedule::serial_ascending;
  if (std::strcmp(name, "serial_descending") == 0) return Schedule::serial_descending;
  std::fprintf(stderr,
               "simt emulator: LOOM_SIMT_SCHEDULE is '%s', expected concurrent, serial_ascending or "
               "serial_descending\n",
               name);
  std::exit(2);
}

// -1: no guard is active, the environment decides.
inline std::atomic<int> schedule_override{-1};

// Stacks for the fibers of serial blocks, kept by the launching thread
// across launches: one region of `kBytes` per CUDA thread, each with a
// guard page below it, so an overflow faults instead of corrupting the next.
class FiberStacks {
 public:
  static constexpr size_t kBytes = 256 * 1024;

  ~FiberStacks() {
    if (base_ != nullptr) munmap(base_, count_ * kBytes);
  }

  // The stack of thread t of a block of n: [bottom, bottom + usable()).
  char* bottom(unsigned n, unsigned t) {
    if (n > count_) grow(n);
    return static_cast<char*>(base_) + static_cast<size_t>(t) * kBytes + page();
  }
  static size_t usable() { return kBytes - page(); }

 private:
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

  void grow(unsigned n) {
    if (base_ != nullptr) munmap(base_, count_ * kBytes);
    base_ = mmap(nullptr, n * kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base_ == MAP_FAILED) fault("serial schedule: cannot map the fiber stacks");
    count_ = n;
    for (unsigned t = 0; t < n; ++t)
      mprotect(static_cast<char*>(base_) + static_cast<size_t>(t) * kBytes, page(), PROT_NONE);
  }

  void* base_ = nullptr;
  unsigned count_ = 0;
};

// One block's threads under a serial schedule. They run as fibers (ucontext)
// on the launching thread, one at a time: a switch costs well under a
// microsecond, where handing a turn between OS threads costs a wake-up.
// run() is the scheduler; the barriers call arrive_block() and arrive_warp()
// from inside a fiber, which switch back to it.
class SerialBlock {
 public:
  SerialBlock(unsigned threads, bool descending)
      : threads_(threads), descending_(descending), fibers_(threads), started_(threads, false),
        fake_stacks_(threads, nullptr), at_warp_(threads / 32) {
    std::vector<unsigned> all(threads);
    for (unsigned t = 0; t < threads; ++t) all[t] = t;
    make_ready(all);
  }
  SerialBlock(const SerialBlock&) = delete;
  SerialBlock& operator=(const SerialBlock&) = delete;

  // Runs body(t) for every thread t of the block to its end.
  void run(const std::function<void(unsigned)>& body) {
    body_ = &body;
    SerialBlock* outer = std::exchange(running_block(), this);
    while (!ready_.empty()) {
      running_ = ready_.front();
      ready_.pop_front();
      ucontext_t& fiber = fibers_[running_];
      if (!started_[running_]) {
        started_[running_] = true;
        getcontext(&fiber);
        fiber.uc_stack.ss_sp = stacks().bottom(threads_, running_);
        fiber.uc_stack.ss_size = FiberStacks::usable();
        fiber.uc_link = nullptr;
        makecontext(&fiber, &SerialBlock::fiber_main, 0);
      }
      void* fake_stack = nullptr;
      start_switch(&fake_stack, fiber.uc_stack.ss_sp, fiber.uc_stack.ss_size);
      swapcontext(&scheduler_, &fiber);
      finish_switch(fake_stack, nullptr, nullptr);
    }
    running_block() = outer;
    if (returned_ != threads_) deadlock();
  }

  void arrive_block(unsigned t) { arrive(at_block_, threads_, t); }
  void arrive_warp(unsigned t) { arrive(at_warp_[t / 32], 32, t); }

 private:
  static SerialBlock*& running_block() {
    static thread_local SerialBlock* block = nullptr;
    return block;
  }
  static FiberStacks& stacks() {
    static thread_local FiberStacks s;
    return s;
  }

  static void fiber_main() {
    SerialBlock& b = *running_block();
    const unsigned t = b.running_;
    b.finish_switch(nullptr, &b.scheduler_stack_, &b.scheduler_stack_size_);
    (*b.body_)(t);
    ++b.returned_;
    b.start_switch(nullptr, b.scheduler_stack_, b.scheduler_stack_size_);  // this fiber ends
    swapcontext(&b.fibers_[t], &b.scheduler_);
  }

  // Adds t to the threads waiting at a barrier of `needed` threads, readies
  // them all when t completes it, and switches back to the scheduler.
  void arrive(std::vector<unsigned>& waiting, size_t needed, unsigned t) {
    waiting.push_back(t);
    if (waiting.size() == needed) {
      make_ready(waiting);
      waiting.clear();
    }
    start_switch(&fake_stacks_[t], scheduler_stack_, scheduler_stack_size_);
    swapcontext(&fibers_[t], &scheduler_);
    finish_switch(fake_stacks_[t], nullptr, nullptr);
  }

  // Depth first: the threads a barrier releases run before those that were
  // ready already, so a warp that passes a warp barrier runs on ahead of the
  // block's other warps until it reaches a block barrier. That is what makes
  // a missing barrier before an overwrite show: the warp running ahead
  // overwrites shared memory the others have yet to read. (Readying them at
  // the back instead keeps the warps in step, and hid 5 of 29 such missing
  // barriers in loom's kernels.)
  void make_ready(std::vector<unsigned>& threads) {
    std::sort(threads.begin(), threads.end());
    if (descending_) std::reverse(threads.begin(), threads.end());
    ready_.insert(ready_.begin(), threads.begin(), threads.end());
  }

  // AddressSanitizer is told of each switch between stacks, so that it
  // checks each fiber's frames against that fiber's stack.
  static void start_switch(void** fake_stack, const void* bottom, size_t size) {
#ifdef LOOM_SIMT_ASAN
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
    (void)fake_stack, (void)bottom, (void)size;
#endif
  }
  static void finish_switch(void* fake_stack, const void** bottom_old, size_t* size_old) {
#ifdef LOOM_SIMT_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
#else
    (void)fake_stack, (void)bottom_old, (void)size_old;
#endif
  }

  [[noreturn]] void deadlock() const {
    size_t at_warps = 0;
    for (const std::vector<unsigned>& w : at_warp_) at_warps += w.size();
    const std::string what =
        "deadlock in a block of " + std::to_string(threads_) + " threads: " + std::to_string(at_block_.size()) +
        " wait at sync_block, " + std::to_string(at_warps) + " at a warp barrier (sync_warp, a shuffle or a wmma "
        "operation), " + std::to_string(returned_) +
        " have returned (every thread of a block must reach each sync_block, every lane of a warp each warp "
        "barrier)";
    fault(what.c_str());
  }

  const unsigned threads_;
  const bool descending_;
  const std::function<void(unsigned)>* body_ = nullptr;
  ucontext_t scheduler_{};
  std::vector<ucontext_t> fibers_;
  std::vector<bool> started_;
  std::vector<void*> fake_stacks_;
  const void* scheduler_stack_ = nullptr;
  size_t scheduler_stack_size_ = 0;
  unsigned running_ = 0;
  std::deque<unsigned> ready_;
  std::vector<unsigned> at_block_;
  std::vector<std::vector<unsigned>> at_warp_;
  unsigned returned_ = 0;
};

}  // namespace detail

// The schedule launches use now.
inline Schedule schedule() {
  const int forced = detail::schedule_override.load();
  if (forced >= 0) return static_cast<Schedule>(forced);
  static const Schedule from_environment = detail::schedule_from_environment();
  return from_environment;
}

// Runs the launches of a scope under one schedule (tests of the schedules
// themselves; suites pick theirs with LOOM_SIMT_SCHEDULE).
class ScheduleGuard {
 public:
  explicit ScheduleGuard(Schedule s) : previous_(detail::schedule_override.exchange(static_cast<int>(s))) {}
  ~ScheduleGuard() { detail::schedule_override.store(previous_); }
  ScheduleGuard(const ScheduleGuard&) = delete;
  ScheduleGuard& operator=(const ScheduleGuard&) = delete;

 private:
  int previous_;
};

}  // namespace host_emulation
}  // namespace loom::simt
