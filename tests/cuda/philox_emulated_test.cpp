// The Philox kernels of cuda/philox.cuh on the SIMT emulator against the CPU
// backend's draws: the same stream element for element (uniform bit for bit;
// normal within rounding of the library's log, sin and cos), from any block
// offset and for lengths that end mid-group.
#include <catch2/catch.hpp>

#include <string>

#include "kernels/backend.hpp"
#include "loom/loom.hpp"
#include "philox.cuh"

namespace {
void no_status(int, const char*) {}
}  // namespace

TEST_CASE("emulated Philox draws are the CPU's stream, element for element", "[philox]") {
  using namespace loom;
  const kernels::Backend& cpu = kernels::backend(kCPU);
  for (DType t : {DType::f32, DType::f64}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4096}, int64_t{70001}}) {
      for (uint64_t start : {uint64_t{0}, uint64_t{12345}, (uint64_t{1} << 40) + 3}) {
        const uint64_t seed = 0x5eedULL + static_cast<uint64_t>(n);
        INFO(dtype_name(t) << " n=" << n << " start block " << start);
        Tensor want = empty({n}, t), got = empty({n}, t);
        cpu.uniform(want, seed, start);
        philox_kernels::run(got, seed, start, false, {}, no_status);
        CHECK(got.to_vector<double>() == want.to_vector<double>());

        cpu.normal(want, seed, start);
        philox_kernels::run(got, seed, start, true, {}, no_status);
        CHECK(amax(abs(sub(got, want))).item<double>() <= (t == DType::f32 ? 1e-6 : 1e-12));
      }
    }
  }
}

TEST_CASE("emulated dropout masks are the CPU's, bit for bit, in every floating dtype", "[philox]") {
  using namespace loom;
  const kernels::Backend& cpu = kernels::backend(kCPU);
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{70001}}) {
      for (double p : {0.1, 0.5, 0.9}) {
        const uint64_t seed = 0xd209ULL + static_cast<uint64_t>(n), start = 977;
        INFO(dtype_name(t) << " n=" << n << " p=" << p);
        Tensor want = empty({n}, t), got = empty({n}, t);
        cpu.dropout_mask(want, p, 1.0 / (1.0 - p), seed, start);
        philox_kernels::run_dropout_mask(got, p, 1.0 / (1.0 - p), seed, start, {}, no_status);
        CHECK(got.to(DType::f64).to_vector<double>() == want.to(DType::f64).to_vector<double>());
      }
    }
  }
}
