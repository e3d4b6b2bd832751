// Windowed-sinc resampling (see resample.hpp).
#include "loom/audio/resample.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "loom/core/error.hpp"

namespace loom::audio {

std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate, int zeros) {
  LOOM_CHECK(from_rate > 0 && to_rate > 0, "resample: sample rates must be positive (got ", from_rate, " -> ",
             to_rate, ")");
  LOOM_CHECK(zeros >= 1, "resample: zeros must be >= 1 (got ", zeros, ")");
  if (from_rate == to_rate) return x;
  const double ratio = static_cast<double>(from_rate) / to_rate;
  const double cutoff = std::min(1.0, 1.0 / ratio) * 0.97;
  const double half_width = zeros / cutoff;  // in input samples
  const int64_t n_in = static_cast<int64_t>(x.size());
  const int64_t n_out = static_cast<int64_t>(std::llround(static_cast<double>(n_in) / ratio));
  std::vector<float> y(static_cast<size_t>(n_out));
  constexpr double pi = std::numbers::pi;
  auto weight = [&](double d) {  // the windowed sinc at distance d (input samples)
    if (std::abs(d) >= half_width) return 0.0;
    const double a = pi * cutoff * d;
    const double sinc = std::abs(a) < 1e-12 ? 1.0 : std::sin(a) / a;
    return cutoff * sinc * (0.5 + 0.5 * std::cos(pi * d / half_width));
  };
  // Output n sits at t = n * from / to = (n * step) / phases: with the rates
  // reduced by their gcd there are only `phases` distinct fractional
  // positions, so the weights are tabulated once per phase.
  const int64_t g = std::gcd(from_rate, to_rate);
  const int64_t phases = to_rate / g, step = from_rate / g;
  const int64_t reach = static_cast<int64_t>(std::ceil(half_width));
  const int64_t taps = 2 * reach + 1;  // input offsets j in [-reach, reach] from floor(t)
  if (phases <= 4096) {
    std::vector<double> table(static_cast<size_t>(phases * taps));
    for (int64_t p = 0; p < phases; ++p)
      for (int64_t j = -reach; j <= reach; ++j)
        table[p * taps + j + reach] = weight(static_cast<double>(p) / phases - j);
    for (int64_t n = 0; n < n_out; ++n) {
      const int64_t num = n * step, base = num / phases, p = num % phases;
      const double* w = table.data() + p * taps;
      double acc = 0;
      for (int64_t j = -reach; j <= reach; ++j) {
        const int64_t k = base + j;
        if (k >= 0 && k < n_in) acc += x[k] * w[j + reach];
      }
      y[n] = static_cast<float>(acc);
    }
    return y;
  }
  for (int64_t n = 0; n < n_out; ++n) {
    const double t = n * ratio;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(t - half_width)));
    const int64_t hi = std::min<int64_t>(n_in - 1, static_cast<int64_t>(std::floor(t + half_width)));
    double acc = 0;
    for (int64_t k = lo; k <= hi; ++k) acc += x[k] * weight(t - k);
    y[n] = static_cast<float>(acc);
  }
  return y;
}

}  // namespace loom::audio
