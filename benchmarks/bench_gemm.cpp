// `loom-bench gemm`: C[m,n] = op(A) op(B) through loom::matmul (f32), where
// op transposes a view in place (no copy) when --trans-a / --trans-b is 1.
// Without --m/--n/--k: squares 256..max-square (default 2048), then the
// linear layers of recipes/poetry-gpt.json and recipes/fashion-vit.json, each
// as its forward product x W^T and both backward products (dX = dY W,
// dW = dY^T X). FLOPs are 2 m n k; fraction_of_peak is against the FMA peak.
//
// Peers, timed in the same run on the same operands, in interleaved rounds
// (loom, Eigen, OpenBLAS, loom, ...; --peers 0 skips them):
//  - Eigen: the product Eigen computes on strided maps of the operands, rows
//    split over loom's thread pool (Eigen alone runs single-threaded);
//  - OpenBLAS: cblas_sgemm from libopenblas.so.0, loaded with dlopen (it is not
//    a dependency) with OPENBLAS_CORETYPE unset, so it picks its own kernels,
//    and openblas_set_num_threads(loom's thread count). Its idle threads
//    sleep at once (OPENBLAS_THREAD_TIMEOUT=4 unless set): by default they
//    spin for a while after each call, and the product timed next (loom's,
//    in the next round) ran on one core: 2048x192x192 measured 110-145
//    GFLOP/s after OpenBLAS's spinning threads, 147-172 without, and
//    OpenBLAS's own figure did not change. When it cannot be loaded the
//    record says so in "openblas" instead.
// Peer fields: <peer>_ms, <peer>_gflops and loom_over_<peer> (loom GFLOP/s
// over the peer's; > 1: loom is faster).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

// loom keeps Eigen out of its public interface, so its include directory is
// not on this target's path; the system copy lives under eigen3/.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if __has_include(<Eigen/Core>)
#include <Eigen/Core>
#else
#include <eigen3/Eigen/Core>
#endif
#pragma GCC diagnostic pop

#include "bench.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/core/threads.hpp"
#include "loom/ops/ops.hpp"

namespace loom::bench {

namespace {

// cblas_sgemm and openblas_set_num_threads from a dlopen-ed OpenBLAS.
class OpenBlas {
 public:
  static const OpenBlas& get() {
    static const OpenBlas instance;
    return instance;
  }
  bool loaded() const { return sgemm_ != nullptr; }
  const std::string& missing() const { return missing_; }

  // C[m,n] = op(A) op(B), row-major; A stored [k,m] when ta, B stored [n,k] when tb.
  void multiply(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) const {
    constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
    sgemm_(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
           static_cast<int>(k), 1.0f, a, static_cast<int>(ta ? m : k), b, static_cast<int>(tb ? k : n), 0.0f, c,
           static_cast<int>(n));
  }

 private:
  using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
  using SetThreads = void (*)(int);

  OpenBlas() {
    unsetenv("OPENBLAS_CORETYPE");
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", /*overwrite=*/0);
    void* handle = nullptr;
    for (const char* path : {"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "libopenblas.so.0"})
      if ((handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (handle == nullptr) {
      missing_ = "missing: libopenblas.so.0 not found (apt-get install libopenblas0-pthread)";
      return;
    }
    auto set_threads = reinterpret_cast<SetThreads>(dlsym(handle, "openblas_set_num_threads"));
    sgemm_ = reinterpret_cast<Sgemm>(dlsym(handle, "cblas_sgemm"));
    if (sgemm_ == nullptr || set_threads == nullptr) {
      sgemm_ = nullptr;
      missing_ = "missing: libopenblas.so.0 has no cblas_sgemm / openblas_set_num_threads";
      return;
    }
    set_threads(num_threads());
  }

  Sgemm sgemm_ = nullptr;
  std::string missing_;
};

using EigenMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using EigenStrided = Eigen::Map<const EigenMatrix, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

EigenStrided eigen_view(const Tensor& t, int64_t r0, int64_t rows) {
  return EigenStrided(t.data<float>() + r0 * t.stride(0), rows, t.size(1),
                      Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.stride(0), t.stride(1)));
}

// C = A B with Eigen, rows split over loom's pool as loom split them before it had its own GEMM.
void eigen_multiply(const Tensor& a, const Tensor& b, float* c) {
  const int64_t m = a.size(0), n = b.size(1), k = a.size(1);
  parallel_for(0, m, std::max<int64_t>(16, (1 << 20) / std::max<int64_t>(1, 2 * n * k)), [&](int64_t lo, int64_t hi) {
    Eigen::Map<EigenMatrix> out(c + lo * n, hi - lo, n);
    out.noalias() = eigen_view(a, lo, hi - lo) * eigen_view(b, 0, k);
  });
}

// Median ms of each function, timed in rounds (each round runs every function
// once, in turn), so that on a shared machine a change of load hits all of
// them alike. Warm-up and repetitions as median_ms: --warmup, then --reps or
// enough rounds for about 0.4 s per function (5..50).
std::vector<double> interleaved_median_ms(const Options& opt, const std::vector<std::function<void()>>& fns) {
  using clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> times(fns.size());
  auto round = [&] {
    for (size_t i = 0; i < fns.size(); ++i) {
      const auto t0 = clock::now();
      fns[i]();
      times[i].push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
  };
  for (int i = 0; i < std::max(1, opt.warmup()); ++i) round();
  int reps = opt.reps();
  if (reps <= 0) {
    double slowest = 1e-3;
    for (const auto& t : times) slowest = std::max(slowest, t.back());
    reps = static_cast<int>(std::clamp(400.0 / slowest, 5.0, 50.0));
  }
  for (auto& t : times) t.clear();
  for (int i = 0; i < reps; ++i) round();
  std::vector<double> medians;
  for (auto& t : times) medians.push_back(median(std::move(t)));
  return medians;
}

void add_peer(Record& r, const std::string& peer, double ms, double loom_ms, double flops) {
  r[peer + "_ms"] = std::round(ms * 1e4) / 1e4;
  r[peer + "_gflops"] = std::round(flops / (ms * 1e-3) / 1e9 * 1e3) / 1e3;
  r["loom_over_" + peer] = std::round(ms / loom_ms * 1e3) / 1e3;
}

void one(const Options& opt, int64_t m, int64_t n, int64_t k, bool ta, bool tb, const std::string& layer,
         const std::string& pass) {
  NoGradGuard guard;
  Generator gen(1);
  // A is [m,k] (stored [k,m] when transposed), B is [k,n] (stored [n,k] when transposed).
  Tensor a = ta ? randn({k, m}, {}, &gen).t() : randn({m, k}, {}, &gen);
  Tensor b = tb ? randn({n, k}, {}, &gen).t() : randn({k, n}, {}, &gen);
  Tensor c = empty({m, n});  // the peers' output
  const bool peers = opt.integer("peers", 1) != 0;
  const OpenBlas& blas = OpenBlas::get();
  std::vector<std::function<void()>> fns = {[&] { Tensor product = matmul(a, b); }};
  if (peers) fns.push_back([&] { eigen_multiply(a, b, c.data<float>()); });
  if (peers && blas.loaded())
    fns.push_back([&] { blas.multiply(ta, tb, m, n, k, a.data<float>(), b.data<float>(), c.data<float>()); });
  const std::vector<double> ms = interleaved_median_ms(opt, fns);

  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  Record r = record("gemm", std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k), ms[0]);
  r["m"] = m;
  r["n"] = n;
  r["k"] = k;
  r["trans_a"] = ta;
  r["trans_b"] = tb;
  if (!layer.empty()) {
    r["layer"] = layer;
    r["pass"] = pass;
  }
  add_gflops(r, flops, opt);
  if (peers) {
    add_peer(r, "eigen", ms[1], ms[0], flops);
    if (blas.loaded())
      add_peer(r, "openblas", ms[2], ms[0], flops);
    else
      r["openblas"] = blas.missing();
  }
  emit(r);
}

// A linear layer with `tokens` rows, in -> out features: the three products of a training step.
void linear_layer(const Options& opt, const std::string& name, int64_t tokens, int64_t in, int64_t out) {
  one(opt, tokens, out, in, false, true, name, "fwd");    // Y[T,out] = X[T,in] W[out,in]^T
  one(opt, tokens, in, out, false, false, name, "dgrad");  // dX[T,in] = dY[T,out] W[out,in]
  one(opt, out, in, tokens, true, false, name, "wgrad");   // dW[out,in] = dY^T[out,T] X[T,in]
}

}  // namespace

void run_gemm(const Options& opt) {
  if (opt.has("m") || opt.has("n") || opt.has("k")) {
    const int64_t m = opt.integer("m", 1024), n = opt.integer("n", m), k = opt.integer("k", m);
    one(opt, m, n, k, opt.integer("trans-a", 0) != 0, opt.integer("trans-b", 0) != 0, "", "");
    return;
  }
  const int64_t max_square = opt.integer("max-square", 2048);
  for (int64_t s = 256; s <= max_square; s *= 2) one(opt, s, s, s, false, false, "square", "");
  if (opt.integer("recipes", 1) == 0) return;
  // poetry-gpt: batch 16 x seq 128 = 2048 tokens, d_model 192, mlp 4x, vocab 4096 (tied head).
  const int64_t gt = 16 * 128, gd = 192;
  linear_layer(opt, "gpt.qkv", gt, gd, 3 * gd);
  linear_layer(opt, "gpt.attn_out", gt, gd, gd);
  linear_layer(opt, "gpt.mlp_fc1", gt, gd, 4 * gd);
  linear_layer(opt, "gpt.mlp_fc2", gt, 4 * gd, gd);
  linear_layer(opt, "gpt.lm_head", gt, gd, 4096);
  // fashion-vit: batch 128 x 49 patches = 6272 tokens, d_model 64, mlp 2x; the patch stem is im2col + GEMM.
  const int64_t vt = 128 * 49, vd = 64;
  linear_layer(opt, "vit.patch_embed", vt, 16, vd);
  linear_layer(opt, "vit.qkv", vt, vd, 3 * vd);
  linear_layer(opt, "vit.attn_out", vt, vd, vd);
  linear_layer(opt, "vit.mlp_fc1", vt, vd, 2 * vd);
  linear_layer(opt, "vit.mlp_fc2", vt, 2 * vd, vd);
}

}  // namespace loom::bench
