// Log-mel spectrograms, computed in C++ from the waveform (the input of the
// audio encoder).
//
// Defaults (16 kHz): frames of 25 ms (win_length 400) every 10 ms
// (hop_length 160), a periodic Hann window centred in an n_fft = 512 buffer
// (as torch.stft places it), the power spectrum |X|^2 of the 257 bins, 80
// triangular mel filters on the HTK scale mel(f) = 2595 log10(1 + f / 700)
// between f_min = 0 and f_max = 8000 Hz (centres equally spaced in mel, each
// triangle piecewise linear in Hz with peak 1, no area normalisation, so the
// filters sum to 1 between the first and the last centre), then
// log(mel + 1e-6).
//
// Framing is not centred: frame t covers samples [t * hop, t * hop + win);
// the signal is zero-padded at the end so that every sample lies in a frame:
// frames = 1 + ceil(max(0, n - win) / hop) (one frame for a short signal).
#pragma once

#include <complex>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::audio {

struct MelOptions {
  int sample_rate = 16000;
  int n_fft = 512;
  int win_length = 400;
  int hop_length = 160;
  int n_mels = 80;
  double f_min = 0.0;
  double f_max = 8000.0;
  double log_floor = 1e-6;
};

// In-place iterative radix-2 complex FFT (n = a.size() a power of two),
// X[k] = sum_j a[j] exp(-2 pi i j k / n).
void fft(std::vector<std::complex<double>>& a);
// The n / 2 + 1 non-negative-frequency bins of the DFT of a real signal of
// power-of-two length n >= 2, through one complex FFT of length n / 2.
std::vector<std::complex<double>> rfft(const std::vector<double>& x);

double hz_to_mel(double hz);   // HTK
double mel_to_hz(double mel);  // HTK
// The filterbank, row-major [n_mels, n_fft / 2 + 1].
std::vector<double> mel_filterbank(const MelOptions& options = {});

int64_t mel_frame_count(int64_t n_samples, const MelOptions& options = {});
// f32 [frames, n_mels].
Tensor log_mel_spectrogram(const std::vector<float>& samples, const MelOptions& options = {});
// The same features of waveforms held in a tensor, computed on the tensor's
// device (on a GPU: cuFFT for the spectra, cuBLAS for the mel projection):
// samples [n] or [batch, n] (any floating dtype) -> f32 [frames, n_mels] or
// [batch, frames, n_mels], one frame count for the whole batch. Features, not
// a differentiable op: no gradient flows back to the samples.
Tensor log_mel_spectrogram(const Tensor& samples, const MelOptions& options = {});

}  // namespace loom::audio
