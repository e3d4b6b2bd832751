// Learning-rate schedules: linear warm-up, then constant, cosine or linear decay.
#pragma once

#include <cstdint>
#include <string>

namespace loom::optim {

struct Schedule {
  enum class Kind { constant, cosine, linear } kind = Kind::constant;
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;    // decay ends here (cosine and linear)
  double min_lr_ratio = 0.0;  // lr at the end of decay, as a fraction of base_lr

  // The learning rate for (0-based) step.
  double lr_at(int64_t step) const;
  static Kind kind_from_name(const std::string& name);  // "constant" | "cosine" | "linear"
};

}  // namespace loom::optim
