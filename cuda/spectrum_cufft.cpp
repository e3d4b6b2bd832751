// Power spectra of real frames through cuFFT, for the log-mel spectrogram on
// the device (src/audio/mel_tensor.cpp): one batched real-to-complex FFT
// (cufftPlanMany, CUFFT_R2C) over the rows, then |X|² as a square and a
// pair sum (the pointwise and reduce kernels of this backend).
// Floor: about 2.5 n log2(n) FLOPs per frame; reads R n values, writes
// R (n / 2 + 1) (plus the complex spectrum in between, 2 R (n / 2 + 1)).
// Plans are cached per (device, n, rows); the cache is emptied when it holds
// 32 plans (clips of many lengths), since a plan holds device memory.
#if LOOM_WITH_CUDA

#include <cufft.h>

#include <climits>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels.hpp"
#include "runtime.hpp"

#define LOOM_CUFFT_CHECK(call, ...)                                                                             \
  do {                                                                                                          \
    const cufftResult loom_cufft_st_ = (call);                                                                  \
    if (loom_cufft_st_ != CUFFT_SUCCESS)                                                                        \
      LOOM_FAIL(#call, " at " __FILE__ ":", __LINE__, ": cufftResult ", static_cast<int>(loom_cufft_st_), " ", \
                ##__VA_ARGS__);                                                                                 \
  } while (0)

namespace loom::cuda {

namespace {

constexpr size_t kMaxPlans = 32;

// Guards the plan cache and each plan's use: cuFFT is thread-safe only
// across different plans, and an eviction must not destroy a plan in use.
std::mutex& plan_mutex() {
  static auto* m = new std::mutex();
  return *m;
}

// The plan for `rows` transforms of length n on `device`, bound to its
// stream. The caller holds plan_mutex() until the plan is enqueued.
cufftHandle plan_for(int device, int n, int rows) {
  static auto* plans = new std::map<std::tuple<int, int, int>, cufftHandle>();
  const auto key = std::make_tuple(device, n, rows);
  if (auto it = plans->find(key); it != plans->end()) return it->second;
  if (plans->size() >= kMaxPlans) {
    for (auto& [k, p] : *plans) cufftDestroy(p);
    plans->clear();
  }
  cufftHandle plan = 0;
  int length = n;
  LOOM_CUFFT_CHECK(cufftPlanMany(&plan, 1, &length, nullptr, 1, n, nullptr, 1, n / 2 + 1, CUFFT_R2C, rows),
                   "n ", n, ", rows ", rows);
  LOOM_CUFFT_CHECK(cufftSetStream(plan, stream(device)));
  (*plans)[key] = plan;
  return plan;
}

}  // namespace

bool power_spectrum(const Tensor& frames, const Tensor& power) {
  const Device dev = power.device();
  check_on_device(frames, dev, "power_spectrum", "frames");
  const int64_t rows = frames.size(0), n = frames.size(1), bins = n / 2 + 1;
  if (frames.dtype() != DType::f32 || !frames.is_contiguous() || n > INT_MAX || rows > INT_MAX) return false;
  if (rows == 0) return true;
  DeviceGuard guard(dev.index);
  const TensorOptions on = TensorOptions(DType::f32).with_device(dev);
  Tensor spectrum = empty({rows, bins, 2}, on);  // interleaved (re, im): cufftComplex
  {
    std::lock_guard<std::mutex> lock(plan_mutex());
    const cufftHandle plan = plan_for(dev.index, static_cast<int>(n), static_cast<int>(rows));
    LOOM_CUFFT_CHECK(cufftExecR2C(plan, static_cast<cufftReal*>(frames.raw_data()),
                                  static_cast<cufftComplex*>(spectrum.raw_data())),
                     "n ", n, ", rows ", rows);
  }
  Tensor squares = empty({rows, bins, 2}, on);
  binary(kernels::Binary::mul, spectrum, spectrum, squares);
  reduce(kernels::Reduce::sum, squares, rows * bins, 2, 1, power.reshape({rows * bins, 1}));
  return true;
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA
