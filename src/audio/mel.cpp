// The radix-2 FFT, the HTK mel filterbank and the log-mel spectrogram (see
// mel.hpp).
#include "loom/audio/mel.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "loom/core/error.hpp"

namespace loom::audio {

namespace {
constexpr double kPi = std::numbers::pi;
bool is_pow2(size_t n) { return n >= 1 && (n & (n - 1)) == 0; }
}  // namespace

void fft(std::vector<std::complex<double>>& a) {
  const size_t n = a.size();
  LOOM_CHECK(is_pow2(n), "fft: length ", n, " is not a power of two");
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit-reversal permutation
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const size_t half = len / 2;
    for (size_t k = 0; k < half; ++k) {
      const std::complex<double> w = std::polar(1.0, -2.0 * kPi * static_cast<double>(k) / static_cast<double>(len));
      for (size_t i = 0; i < n; i += len) {
        const std::complex<double> u = a[i + k], v = a[i + k + half] * w;
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
    }
  }
}

std::vector<std::complex<double>> rfft(const std::vector<double>& x) {
  const size_t n = x.size();
  LOOM_CHECK(n >= 2 && is_pow2(n), "rfft: length ", n, " is not a power of two >= 2");
  const size_t m = n / 2;
  std::vector<std::complex<double>> z(m);
  for (size_t j = 0; j < m; ++j) z[j] = {x[2 * j], x[2 * j + 1]};
  fft(z);
  // Even samples E[k] = (Z[k] + conj(Z[m-k])) / 2, odd O[k] = (Z[k] - conj(Z[m-k])) / 2i,
  // X[k] = E[k] + exp(-2 pi i k / n) O[k].
  std::vector<std::complex<double>> out(m + 1);
  for (size_t k = 0; k <= m; ++k) {
    const std::complex<double> zk = z[k % m], zc = std::conj(z[(m - k) % m]);
    const std::complex<double> even = 0.5 * (zk + zc);
    const std::complex<double> odd = std::complex<double>(0, -0.5) * (zk - zc);
    out[k] = even + std::polar(1.0, -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n)) * odd;
  }
  return out;
}

double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

namespace {
void check_options(const MelOptions& o) {
  LOOM_CHECK(o.n_fft >= 2 && is_pow2(static_cast<size_t>(o.n_fft)), "log_mel: n_fft ", o.n_fft,
             " is not a power of two");
  LOOM_CHECK(o.win_length >= 1 && o.win_length <= o.n_fft, "log_mel: win_length ", o.win_length,
             " must be in [1, n_fft = ", o.n_fft, "]");
  LOOM_CHECK(o.hop_length >= 1, "log_mel: hop_length ", o.hop_length, " must be >= 1");
  LOOM_CHECK(o.n_mels >= 1, "log_mel: n_mels ", o.n_mels, " must be >= 1");
  LOOM_CHECK(o.f_min >= 0 && o.f_min < o.f_max && o.f_max <= o.sample_rate / 2.0, "log_mel: need 0 <= f_min (",
             o.f_min, ") < f_max (", o.f_max, ") <= sample_rate / 2 (", o.sample_rate / 2.0, ")");
}
}  // namespace

std::vector<double> mel_filterbank(const MelOptions& o) {
  check_options(o);
  const int bins = o.n_fft / 2 + 1;
  const double mel_lo = hz_to_mel(o.f_min), mel_hi = hz_to_mel(o.f_max);
  std::vector<double> points(o.n_mels + 2);  // edges and centres in Hz
  for (int i = 0; i < o.n_mels + 2; ++i) points[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (o.n_mels + 1));
  std::vector<double> fb(static_cast<size_t>(o.n_mels) * bins, 0.0);
  for (int m = 0; m < o.n_mels; ++m) {
    const double left = points[m], centre = points[m + 1], right = points[m + 2];
    for (int b = 0; b < bins; ++b) {
      const double f = static_cast<double>(b) * o.sample_rate / o.n_fft;
      double w = 0;
      if (f > left && f <= centre) w = (f - left) / (centre - left);
      else if (f > centre && f < right) w = (right - f) / (right - centre);
      fb[static_cast<size_t>(m) * bins + b] = w;
    }
  }
  return fb;
}

int64_t mel_frame_count(int64_t n, const MelOptions& o) {
  if (n <= o.win_length) return 1;
  return 1 + (n - o.win_length + o.hop_length - 1) / o.hop_length;
}

Tensor log_mel_spectrogram(const std::vector<float>& samples, const MelOptions& o) {
  check_options(o);
  const std::vector<double> fb = mel_filterbank(o);
  const int bins = o.n_fft / 2 + 1;
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t frames = mel_frame_count(n, o);
  std::vector<double> window(o.win_length);
  for (int i = 0; i < o.win_length; ++i) window[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * i / o.win_length);
  const int pad = (o.n_fft - o.win_length) / 2;
  Tensor out = empty({frames, o.n_mels}, DType::f32);
  float* y = out.data<float>();
  std::vector<double> buf(o.n_fft), power(bins);
  for (int64_t t = 0; t < frames; ++t) {
    std::fill(buf.begin(), buf.end(), 0.0);
    for (int i = 0; i < o.win_length; ++i) {
      const int64_t s = t * o.hop_length + i;
      if (s < n) buf[pad + i] = samples[s] * window[i];
    }
    const auto spec = rfft(buf);
    for (int b = 0; b < bins; ++b) power[b] = std::norm(spec[b]);
    for (int m = 0; m < o.n_mels; ++m) {
      const double* row = fb.data() + static_cast<size_t>(m) * bins;
      double acc = 0;
      for (int b = 0; b < bins; ++b) acc += row[b] * power[b];
      y[t * o.n_mels + m] = static_cast<float>(std::log(acc + o.log_floor));
    }
  }
  return out;
}

}  // namespace loom::audio
