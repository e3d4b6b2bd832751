// The kernel profile (loom/core/kernel_profile.hpp). While it runs, backend()
// returns, for each table it would have returned, a copy whose entries time
// the call and then make it on the original. Entries are plain function
// pointers, so each copy's wrappers find their original through a slot fixed
// at compile time: one slot per distinct table (the CPU's, the guarded ones,
// the emulated tiles, the CUDA device's).
#include "kernels/profile.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <mutex>
#include <type_traits>
#include <utility>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"
#include "loom/core/kernel_profile.hpp"

namespace loom::kernels {

std::atomic<bool> g_kernel_profile_running{false};

namespace {

thread_local int t_depth = 0;                         // table calls in progress on this thread
thread_local const char* t_context_prefix = nullptr;  // KernelContextScope's label, in two parts
thread_local const std::string* t_context_name = nullptr;

struct Figures {
  int64_t calls = 0;
  double seconds = 0;
};

struct Profile {
  std::mutex mutex;
  std::map<std::tuple<std::string, std::string, std::string>, Figures> rows;  // (kernel, context, device)
};

// Never destroyed: a kernel may finish on a pool thread during exit.
Profile& profile() {
  static auto* p = new Profile;
  return *p;
}

void record(const char* entry, const char* variant, Device device, double seconds) {
  std::string kernel(entry);
  if (variant != nullptr) {
    kernel += '.';
    kernel += variant;
  }
  std::string context;
  if (t_context_name != nullptr) {
    context = t_context_prefix;
    context += *t_context_name;
  }
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  Figures& f = p.rows[{std::move(kernel), std::move(context), device.str()}];
  ++f.calls;
  f.seconds += seconds;
}

// The operation of the entries that take one first: "mul" in binary.mul.
inline const char* variant_of() { return nullptr; }
template <class First, class... Rest>
const char* variant_of(const First& first, const Rest&...) {
  if constexpr (std::is_same_v<First, Unary> || std::is_same_v<First, Binary> || std::is_same_v<First, Compare> ||
                std::is_same_v<First, Reduce>)
    return op_name(first);
  else
    return nullptr;
}

// The device a call runs on: that of its first tensor off the CPU (a copy
// from the host to a device is the device's), else the CPU.
struct CallDevice {
  Device device;
  void operator()(const Tensor& t) {
    if (device.is_cpu() && t.defined()) device = t.device();
  }
  void operator()(const std::vector<Tensor>& list) {
    if (!list.empty()) (*this)(list.front());
  }
  template <class T>
  void operator()(const T&) {}
};

// A real device runs kernels asynchronously: the clock waits for it.
bool asynchronous(Device d) { return d.is_cuda() && cuda::host_emulated_devices() == 0; }

// Times one table call; a call made inside another is the outer call's time.
// A timed entry called after the profile stopped (a graph keeps the attention
// entries it was built with) times nothing.
class TimedCall {
 public:
  template <class... Args>
  TimedCall(const char* entry, const Args&... args) : entry_(entry) {
    if (t_depth > 0 || !kernel_profile_on()) {
      ++t_depth;
      return;
    }
    variant_ = variant_of(args...);
    CallDevice call;
    (call(args), ...);
    device_ = call.device;
    wait_ = asynchronous(device_);
    if (wait_) cuda::synchronize(device_.index);  // a throw here leaves no state behind
    ++t_depth;
    outermost_ = true;
    start_ = std::chrono::steady_clock::now();
  }
  ~TimedCall() {
    --t_depth;
    if (!outermost_) return;
    try {
      if (wait_) cuda::synchronize(device_.index);
      record(entry_, variant_, device_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    } catch (...) {  // a failed wait or a full memory: the figure is lost, the call's own error is not
    }
  }
  TimedCall(const TimedCall&) = delete;
  TimedCall& operator=(const TimedCall&) = delete;

 private:
  const char* entry_;
  const char* variant_ = nullptr;
  bool outermost_ = false;
  bool wait_ = false;
  Device device_;
  std::chrono::steady_clock::time_point start_;
};

constexpr size_t kSlots = 8;

std::array<std::atomic<const Backend*>, kSlots>& wrapped_tables() {
  static std::array<std::atomic<const Backend*>, kSlots> t{};
  return t;
}

template <size_t Slot>
Backend make_profiled(const Backend& wrapped) {
  Backend p = wrapped;
#define LOOM_PROFILE_ENTRY(entry)                                                   \
  if (wrapped.entry != nullptr)                                                     \
    p.entry = [](auto... a) {                                                       \
      TimedCall timed(#entry, a...);                                                \
      return wrapped_tables()[Slot].load(std::memory_order_acquire)->entry(a...);   \
    };
  LOOM_BACKEND_ENTRIES(LOOM_PROFILE_ENTRY)
#undef LOOM_PROFILE_ENTRY
  return p;
}

template <size_t... S>
constexpr std::array<Backend (*)(const Backend&), kSlots> profiled_makers(std::index_sequence<S...>) {
  return {&make_profiled<S>...};
}

}  // namespace

const Backend& profiled(const Backend& wrapped) {
  static std::array<Backend, kSlots> tables{};
  static std::mutex install;
  auto& slots = wrapped_tables();
  for (size_t i = 0; i < kSlots; ++i) {
    const Backend* w = slots[i].load(std::memory_order_acquire);
    if (w == &wrapped) return tables[i];
    if (w != nullptr) continue;
    std::lock_guard<std::mutex> lock(install);
    w = slots[i].load(std::memory_order_acquire);
    if (w == &wrapped) return tables[i];
    if (w != nullptr) continue;  // taken meanwhile by another table
    static constexpr auto makers = profiled_makers(std::make_index_sequence<kSlots>());
    tables[i] = makers[i](wrapped);
    slots[i].store(&wrapped, std::memory_order_release);
    return tables[i];
  }
  LOOM_FAIL("kernel profile: more than ", kSlots, " kernel tables in use");
}

}  // namespace loom::kernels

namespace loom {

void start_kernel_profile() {
  auto& p = kernels::profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  LOOM_CHECK(!kernels::g_kernel_profile_running.load(), "start_kernel_profile: a kernel profile is already running");
  p.rows.clear();
  kernels::g_kernel_profile_running.store(true);
}

std::vector<KernelTime> stop_kernel_profile() {
  auto& p = kernels::profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  LOOM_CHECK(kernels::g_kernel_profile_running.load(), "stop_kernel_profile: no kernel profile is running");
  kernels::g_kernel_profile_running.store(false);
  std::vector<KernelTime> out;
  out.reserve(p.rows.size());
  for (auto& [key, f] : p.rows) out.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), f.calls, f.seconds});
  p.rows.clear();
  std::stable_sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.seconds > b.seconds; });
  return out;
}

bool kernel_profile_running() { return kernels::kernel_profile_on(); }

std::string format_kernel_profile(const std::vector<KernelTime>& rows, double wall_seconds, size_t max_rows) {
  KernelTime all{"all kernels", "", "", 0, 0}, rest{"", "", "", 0, 0};
  const size_t shown = std::min(rows.size(), max_rows);
  for (size_t i = 0; i < rows.size(); ++i) {
    all.calls += rows[i].calls;
    all.seconds += rows[i].seconds;
    if (i >= shown) {
      rest.calls += rows[i].calls;
      rest.seconds += rows[i].seconds;
    }
  }
  rest.kernel = "(" + std::to_string(rows.size() - shown) + " more)";
  int kernel_width = 11, context_width = 7, device_width = 6;
  for (size_t i = 0; i < shown; ++i) {
    kernel_width = std::max(kernel_width, static_cast<int>(rows[i].kernel.size()));
    context_width = std::max(context_width, static_cast<int>(rows[i].context.size()));
    device_width = std::max(device_width, static_cast<int>(rows[i].device.size()));
  }
  auto share = [](double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; };
  std::string out;
  char line[1024];
  std::snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %8s  %10s  %10s  %7s  %7s\n", kernel_width, "kernel",
                context_width, "context", device_width, "device", "calls", "total ms", "us/call", "kernels", "wall");
  out += line;
  auto add = [&](const KernelTime& r) {
    std::snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %8lld  %10.2f  %10.1f  %6.1f%%  %6.1f%%\n", kernel_width,
                  r.kernel.c_str(), context_width, r.context.empty() ? "-" : r.context.c_str(), device_width,
                  r.device.c_str(), static_cast<long long>(r.calls), 1e3 * r.seconds,
                  r.calls > 0 ? 1e6 * r.seconds / static_cast<double>(r.calls) : 0.0, share(r.seconds, all.seconds),
                  share(r.seconds, wall_seconds));
    out += line;
  };
  for (size_t i = 0; i < shown; ++i) add(rows[i]);
  if (rows.size() > shown) add(rest);
  add(all);
  return out;
}

namespace detail {

KernelContextScope::KernelContextScope(const char* prefix, const std::string& name)
    : previous_prefix_(kernels::t_context_prefix), previous_name_(kernels::t_context_name) {
  kernels::t_context_prefix = prefix;
  kernels::t_context_name = &name;
}

KernelContextScope::~KernelContextScope() {
  kernels::t_context_prefix = previous_prefix_;
  kernels::t_context_name = previous_name_;
}

}  // namespace detail

}  // namespace loom
