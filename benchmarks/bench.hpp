// Shared pieces of loom-bench: command-line options, timing (warm-up, then N
// repetitions, median), peak RSS, the machine limits measured by the `peak`
// benchmark, and the one-JSON-object-per-line output.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace loom::bench {

using Record = nlohmann::ordered_json;  // keeps the contract's key order

struct Options {
  std::map<std::string, std::string> values;  // --key value
  std::vector<std::string> sets;              // --set a.b=c (repeatable)
  bool has(const std::string& k) const { return values.count(k) > 0; }
  std::string str(const std::string& k, const std::string& def = "") const;
  int64_t integer(const std::string& k, int64_t def) const;
  double real(const std::string& k, double def) const;
  int warmup() const { return static_cast<int>(integer("warmup", 2)); }
  int reps() const { return static_cast<int>(integer("reps", 0)); }  // 0: chosen from the first timing
};

// The median of `values` (the mean of the middle two for an even count); 0
// for none.
double median(std::vector<double> values);

// Runs fn `warmup` times, then repetitions (opt.reps(), or enough for about
// `budget_s` seconds, between 5 and 50) and returns the median in ms.
double median_ms(const Options& opt, const std::function<void()>& fn, double budget_s = 0.4);

double peak_rss_mb();

// Machine limits, measured once per process (or given by --fma-gflops / --copy-gbps).
struct Limits {
  double fma_gflops = 0;  // fp32 FMA peak on all pool threads
  double copy_gbps = 0;   // large-buffer copy, read + write bytes
};
const Limits& limits(const Options& opt);
double measure_fma_peak(const Options& opt, double* ms = nullptr);
double measure_copy_bandwidth(const Options& opt, int64_t bytes, double* ms = nullptr);

// A record with name, shape, dtype, threads, median_ms filled in.
Record record(const std::string& name, const std::string& shape, double ms, const std::string& dtype = "f32");
// Adds gflops + fraction_of_peak (FMA peak) or gbps + fraction_of_peak (copy bandwidth).
void add_gflops(Record& r, double flops, const Options& opt);
void add_gbps(Record& r, double bytes, const Options& opt);
void emit(Record r);  // adds peak_rss_mb when absent, prints one line, flushes

// Benchmark families (one file each).
void run_peak(const Options& opt);
void run_gemm(const Options& opt);
void run_memory(const std::string& which, const Options& opt);  // softmax, layer_norm, rms_norm, gelu, cross_entropy, adamw, memory
void run_conv(const Options& opt);
void run_linear(const Options& opt);  // linear_gelu against matmul + add + gelu
void run_attention(const Options& opt);
void run_mel(const Options& opt);  // log-mel spectrogram, --seconds S of audio
void run_train_step(const Options& opt);
void run_allreduce(const Options& opt);  // under mpirun

}  // namespace loom::bench
