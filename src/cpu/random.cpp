// Philox draws. Element i of a draw uses block (start + i / 4), lane i % 4, so
// every backend that implements Philox gets the same numbers. Normals use
// Box-Muller on the lane pairs (0,1) and (2,3) of a block.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/random.hpp"

namespace loom::cpu {

void uniform(const Tensor& out, uint64_t seed, uint64_t block) {
  dispatch_float(out.dtype(), "rand", [&]<class T>() {
    T* op = ptr<T>(out);
    const int64_t n = out.numel();
    for (int64_t i = 0; i < n; i += 4) {
      const auto u = philox_uniform4(seed, block + static_cast<uint64_t>(i / 4));
      for (int64_t l = 0; l < 4 && i + l < n; ++l) op[i + l] = static_cast<T>(u[l]);
    }
  });
}

void normal(const Tensor& out, uint64_t seed, uint64_t block) {
  dispatch_float(out.dtype(), "randn", [&]<class T>() {
    T* op = ptr<T>(out);
    const int64_t n = out.numel();
    constexpr double kTwoPi = 6.28318530717958647692;
    for (int64_t i = 0; i < n; i += 4) {
      const auto u = philox_uniform4(seed, block + static_cast<uint64_t>(i / 4));
      for (int pair = 0; pair < 2; ++pair) {
        const double u1 = 1.0 - static_cast<double>(u[2 * pair]);  // in (0, 1]: log is finite
        const double u2 = u[2 * pair + 1];
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const int64_t e = i + 2 * pair;
        if (e < n) op[e] = static_cast<T>(radius * std::cos(kTwoPi * u2));
        if (e + 1 < n) op[e + 1] = static_cast<T>(radius * std::sin(kTwoPi * u2));
      }
    }
  });
}

}  // namespace loom::cpu
