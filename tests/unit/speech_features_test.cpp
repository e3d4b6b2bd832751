// The batched speech features (omni::speech_features of a samples tensor)
// against the per-clip host path the loader uses, on the CPU and on an
// emulated device: the same features to f32 rounding, the same valid frames.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {

// A voiced-sounding clip: two partials with a slow envelope, plus noise.
std::vector<float> clip(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / 16000;
    const double envelope = 0.5 + 0.5 * std::sin(2 * M_PI * 3.0 * t);
    x[i] = static_cast<float>(envelope * (0.3 * std::sin(2 * M_PI * 220.0 * t) + 0.1 * std::sin(2 * M_PI * 1250.0 * t)) +
                              noise(rng));
  }
  return x;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to(kCPU).contiguous().to_vector<float>(), y = b.to(kCPU).contiguous().to_vector<float>();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, static_cast<double>(std::abs(x[i] - y[i])));
  return m;
}

struct Batch {
  Tensor samples, valid, want;  // want: the host path's features, stacked
};

// Clips shorter than one window, shorter than the span, and longer (cropped),
// written as WAV files and read back both ways.
Batch batch(int64_t frames) {
  // One folder per process and frame count: ctest runs the cases in parallel.
  const auto dir = std::filesystem::temp_directory_path() /
                   ("loom-speech-features-" + std::to_string(::getpid()) + "-" + std::to_string(frames));
  std::filesystem::create_directories(dir);
  std::vector<Tensor> samples, valid, want;
  const std::vector<int64_t> lengths = {250, 5000, omni::speech_span(frames) + 3000, 16000};
  for (size_t i = 0; i < lengths.size(); ++i) {
    const std::string path = (dir / ("clip" + std::to_string(i) + ".wav")).string();
    audio::write_wav(path, audio::from_float(clip(lengths[i], static_cast<uint32_t>(i + 1)), 16000));
    Tensor v_samples, v_features;
    samples.push_back(omni::speech_samples_from_wav(path, frames, &v_samples));
    want.push_back(omni::speech_features_from_wav(path, frames, &v_features));
    CHECK(v_samples.to_vector<bool>() == v_features.to_vector<bool>());
    valid.push_back(v_samples);
  }
  std::filesystem::remove_all(dir);
  return {stack(samples, 0), stack(valid, 0), stack(want, 0)};
}

}  // namespace

TEST_CASE("batched speech features equal the loader's per-clip features", "[omni][audio]") {
  const int64_t frames = 64;
  const Batch b = batch(frames);
  CHECK(b.samples.shape() == Shape{4, omni::speech_span(frames)});
  const Tensor got = omni::speech_features(b.samples, b.valid);
  REQUIRE(got.shape() == Shape{4, frames, 80});
  CHECK(max_abs_diff(got, b.want) < 2e-3);
  // The valid frames: one for the clip shorter than a window, all for the cropped one.
  CHECK(sum(b.valid.select(0, 0).to(DType::i64)).item<int64_t>() == 1);
  CHECK(sum(b.valid.select(0, 2).to(DType::i64)).item<int64_t>() == frames);
  // Padding is zero, as in the host features.
  CHECK(max_abs_diff(got.select(0, 1).narrow(0, 40, frames - 40), zeros({frames - 40, 80})) == 0.0);
}

TEST_CASE("batched speech features run on the samples' device", "[omni][audio]") {
  const Batch b = batch(32);
  cuda::HostEmulation emulation(1);
  const Device dev = Device::cuda(0);
  const Tensor got = omni::speech_features(b.samples.to(dev), b.valid.to(dev));
  CHECK(got.device() == dev);
  CHECK(max_abs_diff(got, b.want) < 2e-3);
}

TEST_CASE("batched speech features name bad inputs", "[omni][audio]") {
  const Tensor valid = ones({2, 10}, DType::boolean);
  CHECK_THROWS_WITH(omni::speech_features(zeros({2, 100}), valid), Contains("samples must be [2, 1840] for 10 frames"));
  CHECK_THROWS_WITH(omni::speech_features(zeros({2, 1840}), zeros({2, 10})), Contains("valid must be bool"));
  CHECK_THROWS_WITH(omni::speech_span(0), Contains("frames must be positive"));
}
