// loom-flash-shapes: the register-resident flash-attention forward
// (cuda/flash_forward_mma.cuh) timed at tile shapes other than the ones loom
// launches, on the device, so that one run on a GPU says which shape to take.
//
//   loom-flash-shapes [--reps N] [--seq L]
//
// Per head dim (64, 128) and mask (none, causal), on bf16 [2, 16, L, D]
// (L = 4096 by default): each shape's time per launch (the median of N
// batches of 4 back-to-back launches between two CUDA events, after 3
// warm-ups; default N = 10), its TFLOP/s (dense 4·B·H·L²·D, half when
// causal), its speed-up over loom's shape (> 1: faster than loom's), and its
// largest difference from loom's shape's output relative to the output's
// largest magnitude. Tile shapes change the order of the online softmax's
// sums and where P is rounded to bf16, nothing else: a difference above 2e-2,
// or a non-finite value in any output, is an error. The same comparison runs
// untimed at length 1000 (not a multiple of any tile: the bounds-tested
// copies and the keys' end). One JSON object per line; exit status 1 when an
// output is wrong or a CUDA call fails, 2 for a usage error or no device.
//
// The shapes (rows per warp in 16-row tiles, keys per tile, q's fragments in
// registers or read from shared memory per key tile) are template arguments:
// a shape added here is compiled here only, loom's library keeps its own.
// On a 9.0 device, in a build with sm_90a code, cuda/wgmma_probe.cuh's
// self-check of the warpgroup products runs first, then the wgmma forwards
// (cuda/flash_forward_wgmma.cuh, plain and overlapped: the kernel variants
// flash_forward_wgmma and flash_forward_wgmma_overlap) run beside them, timed
// and compared with loom's shape in the same way; elsewhere a line says why
// they did not.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "flash_attention_args.hpp"
#include "wgmma_probe.cuh"
#include "loom/loom.hpp"

namespace {

using loom::DType;
using loom::Tensor;
using loom::TensorOptions;
using loom::flash::Args;
using loom::flash::mma_forward::Shape;

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "loom-flash-shapes: %s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

// bf16 q, k, v [B·H, L, D] on cuda:0, loom's tensors; the kernels' arguments
// as loom's attention entry builds them.
struct Problem {
  int64_t bh = 32, lq = 4096, d = 64;
  bool causal = false;
  Tensor q, k, v, out, lse;

  Problem(int64_t length, int64_t head_dim, loom::Generator& gen) : lq(length), d(head_dim) {
    const auto device = TensorOptions(DType::f32).with_device(loom::cuda_device());
    for (Tensor* t : {&q, &k, &v}) *t = loom::randn({bh, lq, d}, device, &gen).to(DType::bf16);
    out = loom::empty({bh, lq, d}, TensorOptions(DType::bf16).with_device(loom::cuda_device()));
    lse = loom::empty({bh, lq}, device);
    loom::cuda::synchronize();  // the kernels run on the default stream, loom's work on its own
  }
  double flops() const { return 4.0 * bh * lq * static_cast<double>(lq) * d * (causal ? 0.5 : 1.0); }
  Args args() const {
    return loom::flash::forward_args(q, k, v, Tensor(), out, lse, {causal, 1.0 / std::sqrt(double(d)), false});
  }
};

std::vector<float> output(const Problem& p) { return p.out.to(loom::kCPU).to(DType::f32).to_vector<float>(); }

// Per-launch ms of launch(args): the median over `reps` batches of 4
// launches between two events (a start event recorded on an idle stream
// would count the host's launch latency); and its output.
template <class Launch>
double time_launches(const Problem& p, int reps, Launch&& launch, std::vector<float>& out) {
  constexpr int kBatch = 4;
  const Args a = p.args();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaMemset(p.out.raw_data(), 0xff, p.out.numel() * sizeof(uint16_t)), "poison out");  // NaN until written
  for (int i = 0; i < 3; ++i) check(launch(a), "launch");
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(start), "cudaEventRecord");
    for (int j = 0; j < kBatch; ++j) check(launch(a), "launch");
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "the kernel");
    float t = 0;
    check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    ms.push_back(t / kBatch);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  out = output(p);
  return ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

// Largest |a - b| over the largest |b|; infinity when either holds a
// non-finite value (no output of these unmasked or causal inputs is NaN).
double difference(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 0, worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  }
  return scale > 0 ? worst / scale : worst;
}

// Runs shapes on one problem: loom's first (its output is the reference,
// checked for non-finite values against itself), each line printed as it
// finishes. `timed` false: one launch each, only the outputs compared.
struct Report {
  const Problem& p;
  int reps;
  bool timed = true;
  bool hopper = false;  // a 9.0 device: the wgmma kernels' image runs on it
  double loom_ms = 0;
  std::vector<float> loom_out;
  bool wrong = false;

  template <class S>
  void shape(const char* what) {
    run(what, 16 * S::kRowTiles, S::kKeys, S::kQHeld ? "registers" : "shared",
        [](const Args& a) { return loom::flash::mma_forward::launch<S>(a, nullptr); });
  }

  template <class Launch>
  void run(const char* what, int rows_per_warp, int keys_per_tile, const char* q_where, Launch&& launch) {
    std::vector<float> out;
    const double ms = time_launches(p, timed ? reps : 1, launch, out);
    const bool is_loom = loom_out.empty();
    if (is_loom) loom_ms = ms, loom_out = out;
    const double diff = difference(out, loom_out);
    const bool bad = !(diff <= 2e-2);
    wrong = wrong || bad;
    std::printf("{\"name\": \"%s\", \"shape\": \"[%d, %d, %d, %d]%s\", \"dtype\": \"bf16\", "
                "\"rows_per_warp\": %d, \"keys_per_tile\": %d, \"q\": \"%s\", \"what\": \"%s\", ",
                timed ? "flash_forward_shape" : "flash_forward_shape_check", 2, static_cast<int>(p.bh / 2),
                static_cast<int>(p.lq), static_cast<int>(p.d), p.causal ? " causal" : "", rows_per_warp,
                keys_per_tile, q_where, what);
    if (timed)
      std::printf("\"median_ms\": %.4f, \"tflops\": %.1f, \"speedup_over_loom\": %.3f, ", ms,
                  p.flops() / (ms * 1e-3) / 1e12, loom_ms / ms);
    std::printf("\"max_difference\": %.2e%s}\n", diff, bad ? ", \"error\": \"output differs or is not finite\"" : "");
    std::fflush(stdout);
  }

  // The wgmma forwards at head dim D, plain and overlapped, where they run.
  template <int D>
  void wgmma_shapes() {
#if defined(LOOM_CUDA_WGMMA)
    if (hopper) {
      using loom::flash::wgmma_forward::launch;
      run("wgmma: two warpgroups, 128 queries a block", 16, 128, "shared (wgmma)",
          [](const Args& a) { return launch<D, false>(a, nullptr); });
      run("wgmma, each tile's q k^T beside the previous tile's P v", 16, 128, "shared (wgmma)",
          [](const Args& a) { return launch<D, true>(a, nullptr); });
      return;
    }
    const char* why = "the device is not a 9.0 one";
#else
    const char* why = "this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES without 90a)";
#endif
    std::printf("{\"name\": \"flash_forward_shape\", \"what\": \"wgmma\", \"skipped\": \"%s\"}\n", why);
  }

  // Every shape this benchmark knows at head dim D.
  template <int D>
  void shapes() {
    if constexpr (D == 64) {
      shape<Shape<64>>("loom's");
      shape<Shape<64, 1, 64, true>>("one row tile a warp");
      shape<Shape<64, 2, 64, false>>("q from shared memory (fewer registers)");
      shape<Shape<64, 2, 32, true>>("32 keys a tile");
      shape<Shape<64, 1, 128, true>>("one row tile, 128 keys a tile");
      wgmma_shapes<64>();
    } else {
      shape<Shape<128>>("loom's");
      shape<Shape<128, 1, 64, true>>("one row tile a warp, q held");
      shape<Shape<128, 1, 32, true>>("one row tile, 32 keys a tile");
      shape<Shape<128, 2, 64, false>>("64 keys a tile (spills)");
      wgmma_shapes<128>();
    }
  }
};

#if defined(LOOM_CUDA_WGMMA)
// cuda/wgmma_probe.cuh's self-check of the warpgroup products on the device:
// false when a product differs from float64 by more than 1e-3 (relative to
// 1 + |value|; a layout read otherwise than the code assumes is off by O(1)).
template <int N>
bool probe_wgmma(loom::Generator& gen) {
  namespace probe = loom::simt::wgmma_probe;
  const Tensor a = loom::randn({probe::kM, probe::kK}, TensorOptions(DType::f32), &gen).to(DType::bf16);
  const Tensor b = loom::randn({probe::kK, N}, TensorOptions(DType::f32), &gen).to(DType::bf16);
  const auto on_device = TensorOptions(DType::f32).with_device(loom::cuda_device());
  const Tensor a_dev = a.to(loom::cuda_device()), b_dev = b.to(loom::cuda_device());
  const Tensor twice = loom::empty({probe::kM, N}, on_device), registers = loom::empty({probe::kM, N}, on_device);
  loom::cuda::synchronize();
  probe::Args<N> p;
  p.a = static_cast<const uint16_t*>(a_dev.raw_data());
  p.b = static_cast<const uint16_t*>(b_dev.raw_data());
  p.twice_ab = static_cast<float*>(twice.raw_data());
  p.registers_ab = static_cast<float*>(registers.raw_data());
  check(probe::launch<N>(p, nullptr), "wgmma probe launch");
  check(cudaDeviceSynchronize(), "the wgmma probe");
  const std::vector<float> got_twice = twice.to(loom::kCPU).to_vector<float>();
  const std::vector<float> got_registers = registers.to(loom::kCPU).to_vector<float>();
  p.a = static_cast<const uint16_t*>(a.raw_data());  // the host copies, for the float64 product
  p.b = static_cast<const uint16_t*>(b.raw_data());
  const double error = probe::worst_error<N>(p, got_twice.data(), got_registers.data());
  const bool ok = error <= 1e-3;
  std::printf("{\"name\": \"wgmma_probe\", \"shape\": \"m64n%dk16\", \"max_error\": %.2e%s}\n", N, error,
              ok ? "" : ", \"error\": \"a warpgroup product differs from float64\"");
  std::fflush(stdout);
  return ok;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  int reps = 10, seq = 4096;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--reps" || arg == "--seq") && i + 1 < argc) {
      (arg == "--reps" ? reps : seq) = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: loom-flash-shapes [--reps N] [--seq L]\n");
      return 2;
    }
  }
  if (reps < 1 || seq < 64) {
    std::fprintf(stderr, "loom-flash-shapes: --reps must be at least 1 and --seq at least 64\n");
    return 2;
  }
  if (!loom::cuda_available()) {
    std::fprintf(stderr, "loom-flash-shapes: skipped: no GPU (%s)\n", loom::cuda_unavailable_reason().c_str());
    return 2;
  }
  bool wrong = false;
  int major = 0, minor = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), "compute capability");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0), "compute capability");
  const bool hopper = major == 9 && minor == 0;
  loom::Generator gen(7);
  std::vector<int> lengths{seq};
  if (seq != 1000) lengths.push_back(1000);  // the untimed check
  try {
#if defined(LOOM_CUDA_WGMMA)
    // The primitives first: a misread layout is named here, apart from the
    // attention outputs below.
    if (hopper) wrong = !probe_wgmma<64>(gen) | !probe_wgmma<128>(gen);
#endif
    for (const int d : {64, 128}) {
      for (const int length : lengths) {
        Problem p(length, d, gen);
        for (const bool causal : {false, true}) {
          p.causal = causal;
          Report r{p, reps, /*timed=*/length == seq, hopper};
          if (d == 64)
            r.shapes<64>();
          else
            r.shapes<128>();
          wrong = wrong || r.wrong;
        }
      }
    }
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-flash-shapes: %s\n", e.what());
    return 1;
  }
  return wrong ? 1 : 0;
}
