// Grad mode: whether ops record a graph. Thread-local, as in PyTorch.
#pragma once

namespace loom {

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Disables graph recording for its scope.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace loom
