#include "loom/train/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace loom::train {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(int64_t total, int64_t start, bool enabled)
    : total_(total), start_(start), enabled_(enabled), tty_(isatty(fileno(stderr)) != 0),
      begin_(std::chrono::steady_clock::now()) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
}

void Progress::update(int64_t step, const std::string& status, bool force_line) {
  if (!enabled_) return;
  const double done = static_cast<double>(step - start_), left = static_cast<double>(total_ - step);
  const double eta = done > 0 ? elapsed() / done * left : NAN;
  if (tty_) {
    constexpr int kWidth = 24;
    const int filled = total_ > 0 ? static_cast<int>(kWidth * step / total_) : kWidth;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld %s  left %s\033[K", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total_), status.c_str(), format_duration(eta).c_str());
    drawn_ = true;
    if (force_line) {
      std::fputc('\n', stderr);
      drawn_ = false;
    }
  } else {
    std::fprintf(stderr, "step %lld/%lld %s  left %s\n", static_cast<long long>(step), static_cast<long long>(total_),
                 status.c_str(), format_duration(eta).c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_ && tty_ && drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace loom::train
