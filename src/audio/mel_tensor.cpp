// Log-mel spectrograms of waveforms held in a tensor, computed on the
// tensor's device from loom's ops: framing is a strided view of the padded
// signal, the Hann window one product, the power spectra the backend's
// `power_spectrum` entry (cuFFT on CUDA) or, on the CPU, the radix-2 rfft of
// mel.cpp, the mel projection one GEMM and the log one pointwise op. A device
// without a spectrum entry takes the DFT as two GEMMs against cos and sin
// tables (O(n_fft²) per frame instead of O(n_fft log n_fft), but only GEMMs).
// Same definition as the std::vector overload (loom/audio/mel.hpp).
#include <cmath>

#include "kernels/backend.hpp"
#include "loom/audio/mel.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/core/threads.hpp"
#include "loom/ops/autocast.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/shape.hpp"

namespace loom::audio {

namespace {

constexpr double kPi = 3.14159265358979323846;

TensorOptions f32_on(Device d) { return TensorOptions(DType::f32).with_device(d); }

// A host table of doubles as an f32 tensor [rows, cols] on `device`.
Tensor table_on(const std::vector<double>& v, int64_t rows, int64_t cols, Device device) {
  Tensor t = empty({rows, cols}, DType::f32);
  float* p = t.data<float>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
  return device.is_cpu() ? t : t.to(device);
}

// |rfft|² of each row of contiguous f32 frames on the CPU, in double.
Tensor cpu_power(const Tensor& frames) {
  const int64_t rows = frames.size(0), n = frames.size(1), bins = n / 2 + 1;
  Tensor power = empty({rows, bins}, DType::f32);
  const float* in = frames.data<float>();
  float* out = power.data<float>();
  parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<double> buf(static_cast<size_t>(n));
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = in[r * n + i];
      const std::vector<std::complex<double>> spec = rfft(buf);
      for (int64_t b = 0; b < bins; ++b) out[r * bins + b] = static_cast<float>(std::norm(spec[static_cast<size_t>(b)]));
    }
  });
  return power;
}

// The DFT's real and imaginary parts as two products: re = F . C, im = F . S
// with C[j, k] = cos(2 pi j k / n), S[j, k] = -sin(2 pi j k / n).
Tensor dft_power(const Tensor& frames) {
  const int64_t n = frames.size(1), bins = n / 2 + 1;
  std::vector<double> c(static_cast<size_t>(n * bins)), s(c.size());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < bins; ++k) {
      // j * k mod n keeps the angle small, so the table is exact to rounding
      const double angle = 2.0 * kPi * static_cast<double>((j * k) % n) / static_cast<double>(n);
      c[static_cast<size_t>(j * bins + k)] = std::cos(angle);
      s[static_cast<size_t>(j * bins + k)] = -std::sin(angle);
    }
  const Tensor re = matmul(frames, table_on(c, n, bins, frames.device()));
  const Tensor im = matmul(frames, table_on(s, n, bins, frames.device()));
  return add(mul(re, re), mul(im, im));
}

Tensor power_spectra(const Tensor& frames) {
  const kernels::Backend& table = kernels::backend(frames.device());
  if (table.power_spectrum != nullptr) {
    Tensor power = empty({frames.size(0), frames.size(1) / 2 + 1}, f32_on(frames.device()));
    if (table.power_spectrum(frames, power)) return power;
  }
  return frames.device().is_cpu() ? cpu_power(frames) : dft_power(frames);
}

}  // namespace

Tensor log_mel_spectrogram(const Tensor& samples_in, const MelOptions& o) {
  const std::vector<double> fb = mel_filterbank(o);  // checks the options
  LOOM_CHECK(samples_in.defined(), "log_mel: samples is an undefined tensor");
  LOOM_CHECK(samples_in.dim() == 1 || samples_in.dim() == 2, "log_mel: expected samples [n] or [batch, n], got ",
             shape_str(samples_in.shape()));
  LOOM_CHECK(is_floating(samples_in.dtype()), "log_mel: samples must be floating point, got ",
             dtype_name(samples_in.dtype()));
  NoGradGuard no_grad;                                 // features, not a differentiable op
  AutocastGuard full_precision(DType::bf16, false);   // f32 throughout, as the vector version
  const Device device = samples_in.device();
  const bool batched = samples_in.dim() == 2;
  const Tensor samples = (batched ? samples_in : samples_in.unsqueeze(0)).to(DType::f32).contiguous();
  const int64_t batch = samples.size(0), n = samples.size(1);
  const int64_t frames = mel_frame_count(n, o);
  const int64_t win = o.win_length, bins = o.n_fft / 2 + 1;

  // Zero-pad the end so that every frame lies inside, then view the frames.
  const int64_t needed = (frames - 1) * o.hop_length + win;
  Tensor padded = samples;
  if (needed > n) padded = cat({samples, zeros({batch, needed - n}, f32_on(device))}, 1);
  const Tensor framed = make_view(padded, {batch, frames, win}, {needed, o.hop_length, 1}, padded.offset());

  std::vector<double> hann(static_cast<size_t>(win));
  for (int64_t i = 0; i < win; ++i) hann[static_cast<size_t>(i)] = 0.5 - 0.5 * std::cos(2.0 * kPi * i / win);
  Tensor windowed = mul(framed, table_on(hann, 1, win, device).reshape({win}));
  // The window sits centred in the n_fft buffer, as torch.stft places it.
  const int64_t left = (o.n_fft - win) / 2, right = o.n_fft - win - left;
  std::vector<Tensor> parts;
  if (left > 0) parts.push_back(zeros({batch, frames, left}, f32_on(device)));
  parts.push_back(windowed);
  if (right > 0) parts.push_back(zeros({batch, frames, right}, f32_on(device)));
  const Tensor buffers = (parts.size() == 1 ? windowed : cat(parts, 2)).contiguous().reshape({batch * frames, o.n_fft});

  const Tensor power = power_spectra(buffers);                                 // [B * T, bins]
  const Tensor filters = table_on(fb, o.n_mels, bins, device).t();             // [bins, n_mels]
  Tensor mel = log(add(matmul(power, filters), o.log_floor)).reshape({batch, frames, o.n_mels});
  return batched ? mel : mel.squeeze(0);
}

}  // namespace loom::audio
