// The kernel profile's side of the dispatch (loom/core/kernel_profile.hpp):
// while a profile runs, backend() hands out a timed copy of each table.
#pragma once

#include <atomic>

#include "kernels/backend.hpp"

namespace loom::kernels {

extern std::atomic<bool> g_kernel_profile_running;

inline bool kernel_profile_on() { return g_kernel_profile_running.load(std::memory_order_relaxed); }

// A table with `wrapped`'s entries (null where it has none), each timing its
// call into the running profile and then making it on `wrapped`.
const Backend& profiled(const Backend& wrapped);

}  // namespace loom::kernels
