// Progress display: a redrawn bar on a terminal, plain lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace loom::train {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t start_step, bool enabled);
  // Shows step (1-based count of finished steps) with a short status text.
  void update(int64_t step, const std::string& status, bool force_line = false);
  void finish();
  // Seconds since construction.
  double elapsed() const;

 private:
  int64_t total_, start_;
  bool enabled_, tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point begin_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace loom::train
