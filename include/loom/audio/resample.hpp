// Sample-rate conversion by windowed-sinc interpolation.
//
// espeak-ng speaks at 22050 Hz; the dataset and the audio encoders use
// 16 kHz. Output sample n sits at input time t = n * from / to and is
//   sum_k x[k] * c * sinc(c * (t - k)) * hann((t - k) / (zeros / c)),
// with cutoff c = min(1, to / from) * 0.97 (a low-pass below the new Nyquist
// frequency, so downsampling does not alias) and `zeros` zero crossings of
// the sinc on each side (16). Samples outside the input count as zero. The
// output has round(n * to / from) samples.
#pragma once

#include <vector>

namespace loom::audio {

std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate, int zeros = 16);

}  // namespace loom::audio
