#include "loom/optim/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/error.hpp"

namespace loom::optim {

double Schedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps)
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == Kind::constant) return base_lr;
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double t = std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(span), 0.0, 1.0);
  const double min_lr = base_lr * min_lr_ratio;
  if (kind == Kind::linear) return base_lr + (min_lr - base_lr) * t;
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * t));
}

Schedule::Kind Schedule::kind_from_name(const std::string& name) {
  if (name == "constant") return Kind::constant;
  if (name == "cosine") return Kind::cosine;
  if (name == "linear") return Kind::linear;
  LOOM_FAIL("unknown schedule '", name, "' (expected constant, cosine or linear)");
}

}  // namespace loom::optim
