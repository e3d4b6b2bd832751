// `loom-bench peak`: the machine limits every fraction_of_peak is taken
// against, measured here rather than quoted from a data sheet.
//  - fp32 FMA peak: each pool thread runs a loop of independent FMA chains,
//    enough to cover FMA latency x issue width on current x86 cores, all held
//    in registers: 16 accumulators of AVX-512's 32 registers, or 12 of AVX2's
//    16 (with the two constants; 16 there spill one chain through memory,
//    which measured 100 instead of 176 GFLOP/s on a 2-core Zen 3), AVX-512
//    when compiled for it, else AVX2+FMA.
//  - copy bandwidth: memcpy between two buffers far larger than the last-level
//    cache, split across the pool; read + write bytes are counted.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "bench.hpp"
#include "loom/core/threads.hpp"

namespace loom::bench {

namespace {

volatile float g_sink;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr const char* kIsa = "avx512";
constexpr int kChains = 16;
// kChains accumulators x 16 lanes x 2 flops per iteration.
float fma_loop(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(1.0f + 1e-3f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float v[16];
  _mm512_store_ps(v, s);
  float t = 0;
  for (float x : v) t += x;
  return t;
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
constexpr const char* kIsa = "avx2";
constexpr int kChains = 12;
float fma_loop(int64_t iters) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(1.0f + 1e-3f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  float t = 0;
  for (float x : v) t += x;
  return t;
}
#else
constexpr int kLanes = 1;
constexpr const char* kIsa = "scalar";
constexpr int kChains = 16;
float fma_loop(int64_t iters) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = 1.0f + 1e-3f * static_cast<float>(i);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.9999999f + 1e-7f;
  float t = 0;
  for (float x : acc) t += x;
  return t;
}
#endif

constexpr int64_t kIters = 20'000'000;  // per thread: 20M x 512 flops (AVX-512) ~ 10 GFLOP; AVX2 ~ 4

}  // namespace

double measure_fma_peak(const Options& opt, double* ms_out) {
  const int nt = num_threads();
  const int64_t iters = opt.integer("fma-iters", kIters);
  Options o = opt;
  o.values["warmup"] = std::to_string(1);
  if (!o.has("reps")) o.values["reps"] = std::to_string(5);
  const double ms = median_ms(o, [&] {
    std::vector<float> out(nt);
    parallel_for(0, nt, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) out[t] = fma_loop(iters);
    });
    g_sink = out[0];
  });
  if (ms_out) *ms_out = ms;
  const double flops = static_cast<double>(nt) * static_cast<double>(iters) * kChains * kLanes * 2;
  return flops / (ms * 1e-3) / 1e9;
}

double measure_copy_bandwidth(const Options& opt, int64_t bytes, double* ms_out) {
  std::unique_ptr<char[]> src(new char[bytes]), dst(new char[bytes]);
  std::memset(src.get(), 1, bytes);  // fault the pages in before timing
  std::memset(dst.get(), 0, bytes);
  const int64_t chunk = int64_t{1} << 20;
  Options o = opt;
  o.values["warmup"] = std::to_string(2);
  if (!o.has("reps")) o.values["reps"] = std::to_string(7);
  const double ms = median_ms(o, [&] {
    parallel_for(0, bytes / chunk, 1, [&](int64_t lo, int64_t hi) {
      std::memcpy(dst.get() + lo * chunk, src.get() + lo * chunk, (hi - lo) * chunk);
    });
  });
  g_sink = static_cast<float>(dst[bytes / 2]);
  if (ms_out) *ms_out = ms;
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

void run_peak(const Options& opt) {
  double ms = 0;
  const double fma = measure_fma_peak(opt, &ms);
  char label[96];
  std::snprintf(label, sizeof label, "%s x%d accumulators", kIsa, kChains);
  Record r = record("peak_fma", label, ms);
  r["gflops"] = std::round(fma * 1e3) / 1e3;
  r["fraction_of_peak"] = 1.0;
  emit(r);
  const int64_t bytes = opt.integer("copy-mb", 128) << 20;
  const double bw = measure_copy_bandwidth(opt, bytes, &ms);
  std::snprintf(label, sizeof label, "%lld MiB -> %lld MiB", static_cast<long long>(bytes >> 20),
                static_cast<long long>(bytes >> 20));
  Record c = record("peak_copy", label, ms, "u8");
  c["gbps"] = std::round(bw * 1e3) / 1e3;
  c["fraction_of_peak"] = 1.0;
  emit(c);
}

}  // namespace loom::bench
