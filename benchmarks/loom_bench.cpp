// loom-bench NAME [options]: times loom's kernels and whole training steps and
// prints one JSON object per line (name, shape, dtype, threads, median_ms,
// gflops | gbps | tokens_per_s | samples_per_s, peak_rss_mb, fraction_of_peak).
// fraction_of_peak is taken against limits this program measures itself
// (`loom-bench peak`): the fp32 FMA peak for compute-bound work and the copy
// bandwidth for memory-bound work.
#include <sys/resource.h>

#include <algorithm>
#include <utility>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench.hpp"
#include "loom/core/error.hpp"
#include "loom/core/threads.hpp"

namespace loom::bench {

std::string Options::str(const std::string& k, const std::string& def) const {
  auto it = values.find(k);
  return it == values.end() ? def : it->second;
}
int64_t Options::integer(const std::string& k, int64_t def) const {
  return has(k) ? std::stoll(values.at(k)) : def;
}
double Options::real(const std::string& k, double def) const { return has(k) ? std::stod(values.at(k)) : def; }

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double median_ms(const Options& opt, const std::function<void()>& fn, double budget_s) {
  using clock = std::chrono::steady_clock;
  auto once = [&] {
    const auto t0 = clock::now();
    fn();
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  };
  std::vector<double> times;
  for (int i = 0; i < std::max(1, opt.warmup()); ++i) times.push_back(once());
  int reps = opt.reps();
  if (reps <= 0) reps = static_cast<int>(std::clamp(budget_s * 1e3 / std::max(1e-3, times.back()), 5.0, 50.0));
  times.clear();
  for (int i = 0; i < reps; ++i) times.push_back(once());
  return median(std::move(times));
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

const Limits& limits(const Options& opt) {
  static Limits l = [&] {
    Limits x;
    x.fma_gflops = opt.has("fma-gflops") ? opt.real("fma-gflops", 0) : measure_fma_peak(opt);
    x.copy_gbps = opt.has("copy-gbps") ? opt.real("copy-gbps", 0) : measure_copy_bandwidth(opt, int64_t{128} << 20);
    return x;
  }();
  return l;
}

Record record(const std::string& name, const std::string& shape, double ms, const std::string& dtype) {
  Record r;
  r["name"] = name;
  r["shape"] = shape;
  r["dtype"] = dtype;
  r["threads"] = num_threads();
  r["median_ms"] = std::round(ms * 1e4) / 1e4;
  return r;
}

static double round3(double v) { return std::round(v * 1e3) / 1e3; }

void add_gflops(Record& r, double flops, const Options& opt) {
  const double g = flops / (r["median_ms"].get<double>() * 1e-3) / 1e9;
  r["gflops"] = round3(g);
  r["fraction_of_peak"] = round3(g / limits(opt).fma_gflops);
}

void add_gbps(Record& r, double bytes, const Options& opt) {
  const double g = bytes / (r["median_ms"].get<double>() * 1e-3) / 1e9;
  r["gbps"] = round3(g);
  r["fraction_of_peak"] = round3(g / limits(opt).copy_gbps);
}

void emit(Record r) {
  if (!r.contains("peak_rss_mb")) r["peak_rss_mb"] = round3(peak_rss_mb());
  // fraction_of_peak last, as the contract lists it
  if (r.contains("fraction_of_peak")) {
    const auto f = r["fraction_of_peak"];
    r.erase("fraction_of_peak");
    r["fraction_of_peak"] = f;
  }
  std::cout << r.dump() << std::endl;
}

}  // namespace loom::bench

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: loom-bench NAME [options]\n"
               "  peak                               fp32 FMA peak and copy bandwidth of this machine\n"
               "  gemm [--m M --n N --k K]           one product (default: square sweep + recipe shapes;\n"
               "       [--trans-a 1] [--trans-b 1]    --max-square N caps the sweep, default 2048)\n"
               "  softmax | layer_norm | rms_norm | residual_norm | gelu | cross_entropy | adamw | dropout | copy\n"
               "  memory                             all of the above\n"
               "  conv                               patch embedding and a 3x3 convolution (fused and composed)\n"
               "  linear                             linear + GELU: the fused entry against matmul + add + gelu\n"
               "  attention [--seq T] [--queries L] [--causal 0|1]\n"
               "                                     scaled-dot-product attention, fused and composed, forward and\n"
               "                                     forward+backward (--queries: the last L of T positions)\n"
               "  mel [--seconds S]                  log-mel spectrogram of S seconds of 16 kHz audio (default 10)\n"
               "  train-step --recipe R [--set k=v]... [--steps N] [--warmup W] [--synthetic 1] [--peak-tflops T]\n"
               "             [--attention automatic|fused|vendor|composed] [--profile N]\n"
               "                                     whole steps on train.device in train.precision; --synthetic:\n"
               "                                     random tokens (gpt); --peak-tflops: the device's GEMM rate;\n"
               "                                     --profile: N more steps timed kernel by kernel (stderr)\n"
               "  kernels                            gemm + memory + conv + linear + attention + mel\n"
               "  allreduce [--min B] [--max B] [--iters N]   MPI all-reduce bandwidth (mpirun -np N loom-bench allreduce)\n"
               "options: --threads N  --reps N  --warmup N  --fma-gflops X --copy-gbps Y (skip measuring limits)\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom::bench;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  Options opt;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      std::fprintf(stderr, "loom-bench: expected --key value, got '%s'\n", a.c_str());
      usage();
      return 2;
    }
    a = a.substr(2);
    if (a == "set")
      opt.sets.push_back(argv[++i]);
    else
      opt.values[a] = argv[++i];
  }
  try {
    if (opt.has("threads")) loom::set_num_threads(static_cast<int>(opt.integer("threads", 0)));
    if (name == "peak") {
      run_peak(opt);
    } else if (name == "gemm") {
      run_gemm(opt);
    } else if (name == "softmax" || name == "layer_norm" || name == "rms_norm" || name == "residual_norm" ||
               name == "gelu" ||
               name == "cross_entropy" || name == "adamw" || name == "dropout" || name == "copy" || name == "memory") {
      run_memory(name, opt);
    } else if (name == "conv") {
      run_conv(opt);
    } else if (name == "linear") {
      run_linear(opt);
    } else if (name == "attention") {
      run_attention(opt);
    } else if (name == "mel") {
      run_mel(opt);
    } else if (name == "train-step") {
      run_train_step(opt);
    } else if (name == "allreduce") {
      run_allreduce(opt);
    } else if (name == "kernels") {
      run_gemm(opt);
      run_memory("memory", opt);
      run_conv(opt);
      run_linear(opt);
      run_attention(opt);
      run_mel(opt);
    } else {
      std::fprintf(stderr, "loom-bench: unknown benchmark '%s'\n", name.c_str());
      usage();
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loom-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
