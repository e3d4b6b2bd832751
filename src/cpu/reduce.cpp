// Reductions over the middle axis of a contiguous [outer, r, inner] block.
// Sums accumulate in double, so f32 results do not depend on the order.
#include <limits>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"

namespace loom::cpu {

void reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out) {
  dispatch_float(x.dtype(), "reduce", [&]<class T>() {
    const T* xp = ptr<T>(x);
    if (op == Reduce::sum) {
      T* o = ptr<T>(out);
      std::vector<double> acc(static_cast<size_t>(inner));
      for (int64_t a = 0; a < outer; ++a) {
        std::fill(acc.begin(), acc.end(), 0.0);
        const T* base = xp + a * r * inner;
        for (int64_t k = 0; k < r; ++k) {
          const T* row = base + k * inner;
          for (int64_t c = 0; c < inner; ++c) acc[c] += row[c];
        }
        for (int64_t c = 0; c < inner; ++c) o[a * inner + c] = static_cast<T>(acc[c]);
      }
      return;
    }
    // max and argmax: first maximal index wins; NaN counts as the maximum.
    for (int64_t a = 0; a < outer; ++a) {
      for (int64_t c = 0; c < inner; ++c) {
        const T* p = xp + a * r * inner + c;
        T best = p[0];
        int64_t best_k = 0;
        for (int64_t k = 1; k < r && best == best; ++k) {
          const T v = p[k * inner];
          if (v > best || v != v) {
            best = v;
            best_k = k;
          }
        }
        if (op == Reduce::max) ptr<T>(out)[a * inner + c] = best;
        else ptr<int64_t>(out)[a * inner + c] = best_k;
      }
    }
  });
}

}  // namespace loom::cpu
