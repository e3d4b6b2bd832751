#include "loom/core/deterministic.hpp"

#include <atomic>

namespace loom {

namespace {
std::atomic<bool> g_deterministic{false};
}  // namespace

void set_deterministic_algorithms(bool on) { g_deterministic.store(on); }
bool deterministic_algorithms() { return g_deterministic.load(std::memory_order_relaxed); }

}  // namespace loom
