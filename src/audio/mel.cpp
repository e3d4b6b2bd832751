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

namespace {

using Complex = std::complex<double>;

// exp(-2 pi i k / n) for k < n / 2: the twiddle factors of a length-n FFT,
// computed once per transform size instead of once per butterfly stage.
std::vector<Complex> twiddles(size_t n) {
  std::vector<Complex> tw(std::max<size_t>(n / 2, 1));
  for (size_t k = 0; k < tw.size(); ++k) tw[k] = std::polar(1.0, -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n));
  return tw;
}

// In-place FFT of a (length n) with tw = twiddles(n).
void fft_with(std::vector<Complex>& a, const std::vector<Complex>& tw) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit-reversal permutation
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const size_t half = len / 2, stride = n / len;
    for (size_t k = 0; k < half; ++k) {
      const double wr = tw[k * stride].real(), wi = tw[k * stride].imag();
      for (size_t i = 0; i < n; i += len) {
        // v = a[i + k + half] * w, written out: std::complex's operator*
        // checks for infinities (Annex G) and is several times slower
        const Complex x = a[i + k + half];
        const Complex u = a[i + k], v(x.real() * wr - x.imag() * wi, x.real() * wi + x.imag() * wr);
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
    }
  }
}

// The real FFT of x (length n) through one complex FFT of length n / 2:
// half_tw = twiddles(n / 2), full_tw[k] = exp(-2 pi i k / n) for k <= n / 2.
void rfft_with(const std::vector<double>& x, const std::vector<Complex>& half_tw, const std::vector<Complex>& full_tw,
               std::vector<Complex>& z, std::vector<Complex>& out) {
  const size_t m = x.size() / 2;
  z.resize(m);
  for (size_t j = 0; j < m; ++j) z[j] = {x[2 * j], x[2 * j + 1]};
  fft_with(z, half_tw);
  // Even samples E[k] = (Z[k] + conj(Z[m-k])) / 2, odd O[k] = (Z[k] - conj(Z[m-k])) / 2i,
  // X[k] = E[k] + exp(-2 pi i k / n) O[k].
  out.resize(m + 1);
  for (size_t k = 0; k <= m; ++k) {
    const Complex zk = z[k % m], zc = std::conj(z[(m - k) % m]);
    const Complex even = 0.5 * (zk + zc), diff = zk - zc;
    const Complex odd(0.5 * diff.imag(), -0.5 * diff.real());  // (zk - zc) / 2i
    const double wr = full_tw[k].real(), wi = full_tw[k].imag();
    out[k] = even + Complex(odd.real() * wr - odd.imag() * wi, odd.real() * wi + odd.imag() * wr);
  }
}

std::vector<Complex> rfft_twiddles(size_t n) {
  std::vector<Complex> tw(n / 2 + 1);
  for (size_t k = 0; k < tw.size(); ++k) tw[k] = std::polar(1.0, -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n));
  return tw;
}

}  // namespace

void fft(std::vector<std::complex<double>>& a) {
  LOOM_CHECK(is_pow2(a.size()), "fft: length ", a.size(), " is not a power of two");
  fft_with(a, twiddles(a.size()));
}

std::vector<std::complex<double>> rfft(const std::vector<double>& x) {
  const size_t n = x.size();
  LOOM_CHECK(n >= 2 && is_pow2(n), "rfft: length ", n, " is not a power of two >= 2");
  std::vector<Complex> z, out;
  rfft_with(x, twiddles(n / 2), rfft_twiddles(n), z, out);
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
  // Each triangle is non-zero on one run of bins: apply only that run.
  std::vector<std::pair<int, int>> support(o.n_mels, {0, 0});
  for (int m = 0; m < o.n_mels; ++m) {
    const double* row = fb.data() + static_cast<size_t>(m) * bins;
    int lo = 0, hi = bins;
    while (lo < bins && row[lo] == 0.0) ++lo;
    while (hi > lo && row[hi - 1] == 0.0) --hi;
    support[m] = {lo, hi};
  }
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t frames = mel_frame_count(n, o);
  std::vector<double> window(o.win_length);
  for (int i = 0; i < o.win_length; ++i) window[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * i / o.win_length);
  const std::vector<Complex> half_tw = twiddles(o.n_fft / 2), full_tw = rfft_twiddles(o.n_fft);
  const int pad = (o.n_fft - o.win_length) / 2;
  Tensor out = empty({frames, o.n_mels}, DType::f32);
  float* y = out.data<float>();
  std::vector<double> buf(o.n_fft), power(bins);
  std::vector<Complex> scratch, spec;
  for (int64_t t = 0; t < frames; ++t) {
    std::fill(buf.begin(), buf.end(), 0.0);
    for (int i = 0; i < o.win_length; ++i) {
      const int64_t s = t * o.hop_length + i;
      if (s < n) buf[pad + i] = samples[s] * window[i];
    }
    rfft_with(buf, half_tw, full_tw, scratch, spec);
    for (int b = 0; b < bins; ++b) power[b] = std::norm(spec[b]);
    for (int m = 0; m < o.n_mels; ++m) {
      const double* row = fb.data() + static_cast<size_t>(m) * bins;
      double acc = 0;
      for (int b = support[m].first; b < support[m].second; ++b) acc += row[b] * power[b];
      y[t * o.n_mels + m] = static_cast<float>(std::log(acc + o.log_floor));
    }
  }
  return out;
}

}  // namespace loom::audio
