// loom/audio: the WAV reader/writer (round trips and every rejection), the
// windowed-sinc resampler, the radix-2 FFT against a naive float64 DFT, the
// HTK mel filterbank, and the log-mel spectrogram of pure tones.
// (No torchaudio/librosa goldens: neither is installed on these machines.)
#include <catch2/catch.hpp>

#include <cmath>
#include <complex>
#include <numbers>
#include <string>
#include <vector>

#include <loom/audio/mel.hpp>
#include <loom/audio/resample.hpp>
#include <loom/audio/wav.hpp>
#include <loom/core/cuda.hpp>
#include <loom/core/error.hpp>
#include <loom/core/random.hpp>
#include <loom/ops/autocast.hpp>
#include <loom/ops/creation.hpp>
#include <loom/ops/elementwise.hpp>
#include <loom/ops/reduction.hpp>
#include <loom/ops/shape.hpp>

using namespace loom::audio;
using Catch::Contains;

namespace {

constexpr double kPi = std::numbers::pi;

Wav parse(const std::string& bytes) {
  return parse_wav(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.wav");
}
void put32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put16(std::string& s, size_t at, uint16_t v) {
  s[at] = static_cast<char>(v & 0xff);
  s[at + 1] = static_cast<char>(v >> 8);
}

std::vector<double> random_signal(size_t n, uint64_t seed) {
  std::vector<double> x(n);
  for (size_t i = 0; i < n; i += 4) {
    const auto u = loom::philox_uniform4(seed, i / 4);
    for (size_t k = 0; k < 4 && i + k < n; ++k) x[i + k] = 2.0 * u[k] - 1.0;
  }
  return x;
}

std::vector<std::complex<double>> naive_dft(const std::vector<std::complex<double>>& x) {
  const size_t n = x.size();
  std::vector<std::complex<double>> out(n);
  for (size_t k = 0; k < n; ++k) {
    std::complex<double> acc = 0;
    for (size_t j = 0; j < n; ++j) acc += x[j] * std::polar(1.0, -2.0 * kPi * double((j * k) % n) / double(n));
    out[k] = acc;
  }
  return out;
}

std::vector<float> tone(double hz, int rate, int n, double amplitude = 0.5) {
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(amplitude * std::sin(2 * kPi * hz * i / rate));
  return x;
}

}  // namespace

TEST_CASE("WAV round trips mono and stereo 16-bit PCM at any rate", "[audio]") {
  for (int channels : {1, 2})
    for (int rate : {8000, 16000, 22050, 44100}) {
      Wav w;
      w.sample_rate = rate;
      w.channels = channels;
      for (int i = 0; i < 1000 * channels; ++i) w.samples.push_back(static_cast<int16_t>((i * 7919) % 65536 - 32768));
      const std::string bytes = encode_wav(w);
      CHECK(bytes.size() == 44 + 2 * w.samples.size());
      const Wav r = parse(bytes);
      CHECK(r.sample_rate == rate);
      CHECK(r.channels == channels);
      CHECK(r.samples == w.samples);
      CHECK(r.frames() == 1000);
    }
  Wav stereo;
  stereo.channels = 2;
  stereo.samples = {16384, -16384, 32767, 32767};
  const auto mono = to_mono_float(stereo);
  REQUIRE(mono.size() == 2);
  CHECK(mono[0] == 0.0f);
  CHECK(mono[1] == Approx(32767.0 / 32768.0));
}

TEST_CASE("WAV reader skips unknown chunks and rejects malformed files naming the field", "[audio]") {
  Wav w;
  w.sample_rate = 16000;
  w.samples = {1, -2, 3, -4, 5};
  const std::string good = encode_wav(w);

  // A LIST chunk of odd size (with its pad byte) between fmt and data.
  std::string with_list = good.substr(0, 36) + "LIST" + std::string("\x03\x00\x00\x00", 4) + "abc" + '\0' + good.substr(36);
  put32(with_list, 4, static_cast<uint32_t>(with_list.size() - 8));
  CHECK(parse(with_list).samples == w.samples);

  auto bad = [&](auto edit, const std::string& message) {
    std::string b = good;
    edit(b);
    CHECK_THROWS_WITH(parse(b), Contains("t.wav") && Contains(message));
  };
  bad([](std::string& b) { b = b.substr(0, 10); }, "too short");
  bad([](std::string& b) { b[0] = 'X'; }, "RIFF");
  bad([](std::string& b) { b[8] = 'X'; }, "WAVE");
  bad([](std::string& b) { put16(b, 20, 3); }, "audio format is 3");
  bad([](std::string& b) { put16(b, 22, 6); }, "channels is 6");
  bad([](std::string& b) { put16(b, 34, 8); }, "bits per sample is 8");
  bad([](std::string& b) { put16(b, 32, 4); }, "block align");
  bad([](std::string& b) { put32(b, 28, 1234); }, "byte rate");
  bad([](std::string& b) { put32(b, 16, 8); }, "fmt chunk has 8 bytes");
  bad([](std::string& b) { put32(b, 40, 1000); }, "data chunk size 1000");
  bad([](std::string& b) { put32(b, 40, 9); }, "not a whole number");
  bad([](std::string& b) { b.resize(b.size() - 4); }, "RIFF size");
  bad([](std::string& b) { b[36] = 'x'; }, "no data chunk");
  bad([](std::string& b) { b[12] = 'x'; b[36] = 'x'; }, "no fmt chunk");
  CHECK_THROWS_WITH(read_wav("/nonexistent/x.wav"), Contains("/nonexistent/x.wav"));
}

TEST_CASE("fft and rfft match a naive float64 DFT to 1e-9", "[audio]") {
  for (size_t n = 2; n <= 1024; n *= 2) {
    const auto x = random_signal(n, n);
    std::vector<std::complex<double>> c(x.begin(), x.end());
    const auto ref = naive_dft(c);
    auto a = c;
    fft(a);
    const auto r = rfft(x);
    REQUIRE(r.size() == n / 2 + 1);
    double err = 0;
    for (size_t k = 0; k < n; ++k) err = std::max(err, std::abs(a[k] - ref[k]));
    for (size_t k = 0; k <= n / 2; ++k) err = std::max(err, std::abs(r[k] - ref[k]));
    INFO("n = " << n);
    CHECK(err < 1e-9);
  }
  std::vector<std::complex<double>> three(3);
  CHECK_THROWS_WITH(fft(three), Contains("power of two"));
}

TEST_CASE("the HTK mel filterbank has 80 rows of 257 bins that sum to one between the centres", "[audio]") {
  const MelOptions o;
  const auto fb = mel_filterbank(o);
  REQUIRE(fb.size() == 80u * 257u);
  CHECK(hz_to_mel(mel_to_hz(1234.5)) == Approx(1234.5));
  CHECK(hz_to_mel(700.0) == Approx(2595.0 * std::log10(2.0)));
  int previous_peak = -1;
  for (int m = 0; m < 80; ++m) {
    double sum = 0, peak = 0;
    int at = 0;
    for (int b = 0; b < 257; ++b) {
      const double w = fb[m * 257 + b];
      CHECK(w >= 0.0);
      CHECK(w <= 1.0);
      sum += w;
      if (w > peak) peak = w, at = b;
    }
    INFO("mel band " << m);
    CHECK(sum > 0.0);            // no empty filter at n_fft 512
    CHECK(at >= previous_peak);  // centres ascend
    previous_peak = at;
  }
  const double first_centre = mel_to_hz(hz_to_mel(8000.0) / 81), last_centre = mel_to_hz(hz_to_mel(8000.0) * 80 / 81);
  for (int b = 0; b < 257; ++b) {
    const double f = b * 16000.0 / 512;
    if (f < first_centre || f > last_centre) continue;
    double col = 0;
    for (int m = 0; m < 80; ++m) col += fb[m * 257 + b];
    INFO("bin " << b << " at " << f << " Hz");
    CHECK(col == Approx(1.0).margin(1e-9));
  }
}

TEST_CASE("log-mel of a pure tone peaks in the mel band centred nearest the tone", "[audio]") {
  const MelOptions o;
  const auto fb = mel_filterbank(o);
  for (double hz : {250.0, 1000.0, 3000.0, 6000.0}) {
    const auto mel = log_mel_spectrogram(tone(hz, 16000, 16000), o);
    REQUIRE(mel.shape() == loom::Shape{99, 80});  // 1 + ceil((16000 - 400) / 160)
    int expected = 0;
    double best = 1e300;
    for (int m = 0; m < 80; ++m) {
      const double centre = mel_to_hz(hz_to_mel(8000.0) * (m + 1) / 81);
      if (std::abs(centre - hz) < best) best = std::abs(centre - hz), expected = m;
    }
    const float* y = mel.data<float>();
    for (int t : {0, 50, 97}) {
      int arg = 0;
      for (int m = 1; m < 80; ++m)
        if (y[t * 80 + m] > y[t * 80 + arg]) arg = m;
      INFO(hz << " Hz, frame " << t);
      CHECK(std::abs(arg - expected) <= 1);
      CHECK(y[t * 80 + arg] > std::log(o.log_floor) + 10);
    }
  }
  const auto silence = log_mel_spectrogram(std::vector<float>(100, 0.0f), o);
  REQUIRE(silence.shape() == loom::Shape{1, 80});
  CHECK(silence.data<float>()[0] == Approx(std::log(1e-6)));
  CHECK(mel_frame_count(401, o) == 2);
  CHECK(mel_frame_count(560, o) == 2);
  CHECK(mel_frame_count(561, o) == 3);
}

namespace {

// Two tones and a little noise: energy in some bands, little in others.
std::vector<float> voice_like(int n, uint64_t seed) {
  std::vector<float> a = tone(440.0, 16000, n, 0.3), b = tone(2900.0, 16000, n, 0.1);
  loom::Generator gen(seed);
  const loom::Tensor noise = loom::randn({n}, loom::DType::f32, &gen);
  for (int i = 0; i < n; ++i) a[i] += b[i] + 0.01f * noise.data<float>()[i];
  return a;
}

double max_abs_diff(const loom::Tensor& a, const loom::Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  return loom::amax(loom::abs(loom::sub(a.to(loom::kCPU), b.to(loom::kCPU)))).item<double>();
}

loom::Tensor as_tensor(const std::vector<float>& v) {
  loom::Tensor t = loom::empty({static_cast<int64_t>(v.size())}, loom::DType::f32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

}  // namespace

TEST_CASE("log-mel of a tensor equals the std::vector definition, one clip or a batch", "[audio]") {
  MelOptions narrow;  // a window shorter than n_fft (centred), and one that fills it
  narrow.n_fft = 256, narrow.win_length = 200, narrow.hop_length = 80, narrow.n_mels = 40;
  MelOptions full = narrow;
  full.win_length = 256;
  for (const MelOptions& o : {MelOptions{}, narrow, full}) {
    INFO("n_fft " << o.n_fft << ", win " << o.win_length);
    const std::vector<float> a = voice_like(4000, 1), b = voice_like(4000, 2);
    const loom::Tensor want_a = log_mel_spectrogram(a, o), want_b = log_mel_spectrogram(b, o);
    const loom::Tensor one = log_mel_spectrogram(as_tensor(a), o);
    // log values of magnitude up to ~10; f32 framing and mel product against the f64 definition
    CHECK(max_abs_diff(one, want_a) < 2e-3);
    const loom::Tensor both = log_mel_spectrogram(loom::stack({as_tensor(a), as_tensor(b)}, 0), o);
    REQUIRE(both.shape() == loom::Shape{2, want_a.size(0), o.n_mels});
    // Rows of a batch are independent: clip 0 alone, up to the last bits (a
    // product twice as tall may be cut differently between threads, which
    // changes the order of a row's sums, not what it sums).
    CHECK(max_abs_diff(both.select(0, 0), one) < 1e-5);
    CHECK(max_abs_diff(both.select(0, 1), want_b) < 2e-3);
  }
  // Autocast does not lower the features' precision.
  {
    loom::AutocastGuard autocast(loom::DType::bf16);
    const loom::Tensor under_autocast = log_mel_spectrogram(as_tensor(voice_like(4000, 1)));
    CHECK(under_autocast.dtype() == loom::DType::f32);
    CHECK(max_abs_diff(under_autocast, log_mel_spectrogram(voice_like(4000, 1))) < 2e-3);
  }
  // A clip shorter than one window is one zero-padded frame.
  const loom::Tensor short_clip = log_mel_spectrogram(as_tensor(voice_like(100, 3)));
  CHECK(max_abs_diff(short_clip, log_mel_spectrogram(voice_like(100, 3))) < 2e-3);
}

TEST_CASE("log-mel on a device without an FFT kernel takes the DFT as two products", "[audio]") {
  loom::cuda::HostEmulation emulated(1);
  const std::vector<float> clip = voice_like(3000, 4);
  const loom::Tensor on_device = log_mel_spectrogram(as_tensor(clip).to(loom::Device::cuda(0)));
  CHECK(on_device.device() == loom::Device::cuda(0));
  CHECK(max_abs_diff(on_device, log_mel_spectrogram(clip)) < 2e-3);
}

TEST_CASE("log-mel of a tensor names what is wrong", "[audio]") {
  CHECK_THROWS_WITH(log_mel_spectrogram(loom::zeros({2, 3, 400})), Contains("samples [n] or [batch, n]"));
  CHECK_THROWS_WITH(log_mel_spectrogram(loom::zeros({400}, loom::DType::i32)), Contains("floating point"));
  CHECK_THROWS_WITH(log_mel_spectrogram(loom::Tensor()), Contains("undefined"));
  MelOptions bad;
  bad.n_fft = 300;
  CHECK_THROWS_WITH(log_mel_spectrogram(loom::zeros({400}), bad), Contains("power of two"));
}

TEST_CASE("resample keeps a sine wave and the length ratio", "[audio]") {
  const auto x = tone(440.0, 22050, 22050);
  const auto y = resample(x, 22050, 16000);
  REQUIRE(y.size() == 16000u);
  double err = 0;
  for (int i = 100; i < 15900; ++i) err = std::max(err, std::abs(y[i] - 0.5 * std::sin(2 * kPi * 440.0 * i / 16000)));
  CHECK(err < 2e-3);
  // A tone above the new Nyquist frequency (9 kHz > 8 kHz) is filtered out.
  const auto high = resample(tone(9000.0, 22050, 22050), 22050, 16000);
  double peak = 0;
  for (int i = 100; i < 15900; ++i) peak = std::max(peak, double(std::abs(high[i])));
  CHECK(peak < 0.02);
  CHECK(resample(x, 16000, 16000) == x);
  CHECK_THROWS_WITH(resample(x, 0, 16000), Contains("sample rates"));
}
