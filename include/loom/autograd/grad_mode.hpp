// Grad mode: whether ops record a graph. Thread-local, as in PyTorch.
#pragma once

namespace loom {

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Sets grad mode for its scope and restores the previous one on leaving it,
// also by an exception (PyTorch's AutoGradMode).
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : previous_(grad_enabled()) { set_grad_enabled(enabled); }
  ~GradModeGuard() { set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// Disables graph recording for its scope.
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

}  // namespace loom
