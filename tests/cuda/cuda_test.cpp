// The CUDA backend against the CPU backend.
//
//   loom_cuda_tests runtime   device discovery, host<->device copies, dtype
//                             conversions, the caching allocator, device errors
//   loom_cuda_tests kernels   each kernel family on shapes and dtypes beyond the
//                             op table (multi-block, strided, broadcast, NaN, ties)
//   loom_cuda_tests ops       every case of the shared op table (tests/ops), f32
//                             and f64, forward and backward, CUDA vs CPU
//   loom_cuda_tests models    whole training steps (GPT, ViT, CNN) moved with
//                             Module::to, against the CPU
//   loom_cuda_tests bench [SECTION...]
//                             timings (not a test; scripts/gpu-check.sh): every
//                             section, or the ones named (pointwise, rows,
//                             norms768, copies, matmul, attention, linear_gelu,
//                             conv, log_mel, cross_entropy)
//
// Every device allocation is poisoned with NaN bytes first, so an output
// element a kernel fails to write cannot match the CPU by accident. Without a
// device the program prints "skipped: no GPU (reason)" and exits 77; a suite
// that ran no check fails. With --host-emulation the kernels, ops and models
// suites run on a cuda::HostEmulation (no GPU needed): every op, module and
// optimizer must keep its tensors on the device; the values are the CPU's.
// With --host-emulation-tiles the ops and models suites also run the CUDA
// backend's tile kernels (cuda/*.cuh) on the SIMT emulator, within the GPU
// tolerances.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <loom/audio/mel.hpp>
#include <loom/core/cuda.hpp>
#include <loom/loom.hpp>

#include "../ops/op_table.hpp"
#include "kernels/backend.hpp"
#include "kernels/variants.hpp"

namespace loom::testing {
namespace {

constexpr int kSkip = 77;
// cuda:0: a GPU, or under --host-emulation a stand-in backed by host memory.
const Device kDev = cuda_device(0);

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A check that cannot run in this build (named, counted as skipped, never as passed).
struct NotBuilt : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define CHECK_THAT(cond, ...)                                                                        \
  do {                                                                                               \
    if (!(cond))                                                                                     \
      throw Failure(::loom::detail::concat(__FILE__, ":", __LINE__, ": ", #cond, " -- ", __VA_ARGS__)); \
  } while (0)

struct Suite {
  explicit Suite(std::string n) : name(std::move(n)) {}
  std::string name;
  int passed = 0, failed = 0, skipped = 0;
  std::vector<std::string> failures;

  void run(const std::string& check, const std::function<void()>& fn) {
    try {
      fn();
      ++passed;
      std::printf("  PASS %s\n", check.c_str());
    } catch (const Failure& f) {
      fail(check, f.what());
    } catch (const NotBuilt& e) {
      ++skipped;
      std::printf("  SKIP %s: %s\n", check.c_str(), e.what());
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find("has no CUDA kernel yet") != std::string::npos) {
        ++skipped;
        std::printf("  SKIP %s: %s\n", check.c_str(), what.c_str());
      } else if (what.find("different devices") != std::string::npos ||
                 what.find("kernel (operands must be on one device") != std::string::npos ||
                 what.find("is on cpu, expected") != std::string::npos) {
        fail(check, "the computation mixes devices (a CPU tensor meets CUDA ones): " + what);
      } else {
        fail(check, "loom::Error: " + what);
      }
    } catch (const std::exception& e) {
      fail(check, std::string("exception: ") + e.what());
    }
    std::fflush(stdout);
  }

  void fail(const std::string& check, const std::string& why) {
    ++failed;
    failures.push_back(check + ": " + why);
    std::printf("  FAIL %s: %s\n", check.c_str(), why.c_str());
  }

  int finish() const {
    std::printf("\n%s: %d passed, %d failed, %d skipped (no CUDA kernel yet, or not in this build)\n", name.c_str(),
                passed, failed, skipped);
    for (const auto& f : failures) std::printf("  failed: %s\n", f.c_str());
    if (passed + failed == 0) {
      std::printf("%s: no check ran\n", name.c_str());
      return 1;
    }
    return failed == 0 ? 0 : 1;
  }
};

// ---------------------------------------------------------------------------
// Comparisons (on the host, in double)
// ---------------------------------------------------------------------------
Tensor host(const Tensor& t) { return to_device(t.detach(), kCPU).contiguous(); }

struct Tolerance {
  double rel, scale, abs;
};
constexpr Tolerance kF32{1e-5, 1e-5, 1e-7};
constexpr Tolerance kF64{1e-10, 1e-10, 1e-12};
constexpr Tolerance kHalf{1e-2, 1e-3, 1e-6};
constexpr Tolerance kExact{0, 0, 0};

// Under --host-emulation the ops suite runs the CPU's own kernels on the same
// layouts, so it demands equality; the kernels suite varies layouts, where the
// CPU's vector and strided paths may differ in the last bit.
bool g_exact = false;

Tolerance tolerance_for(DType t) {
  if (g_exact) return kExact;
  switch (t) {
    case DType::f32: return kF32;
    case DType::f64: return kF64;
    case DType::bf16:
    case DType::f16: return kHalf;
    default: return kExact;
  }
}

// got (any device) against want (CPU): same shape and dtype; NaN only where
// want has NaN; elsewhere |g - w| <= rel |w| + scale max|w| + abs.
void expect_close(const Tensor& got, const Tensor& want, Tolerance tol, const std::string& what) {
  CHECK_THAT(got.defined(), what, ": undefined result");
  CHECK_THAT(got.shape() == want.shape(), what, ": shape ", shape_str(got.shape()), " vs ", shape_str(want.shape()));
  CHECK_THAT(got.dtype() == want.dtype(), what, ": dtype ", dtype_name(got.dtype()), " vs ", dtype_name(want.dtype()));
  const auto g = host(got).to_vector<double>();
  const auto w = want.contiguous().to_vector<double>();
  double scale = 0;
  for (double v : w)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i])) {
      CHECK_THAT(std::isnan(g[i]), what, " element ", i, ": cuda ", g[i], ", cpu NaN");
      continue;
    }
    CHECK_THAT(!std::isnan(g[i]), what, " element ", i, ": cuda NaN (unwritten or wrong), cpu ", w[i]);
    if (std::isinf(w[i])) {
      CHECK_THAT(g[i] == w[i], what, " element ", i, ": cuda ", g[i], ", cpu ", w[i]);
      continue;
    }
    const double bound = tol.rel * std::abs(w[i]) + tol.scale * scale + tol.abs;
    CHECK_THAT(std::abs(g[i] - w[i]) <= bound, what, " element ", i, " of ", shape_str(want.shape()), ": cuda ", g[i],
               ", cpu ", w[i], " (|diff| ", std::abs(g[i] - w[i]), " > ", bound, ")");
  }
}

// ||got - want||_2 <= rel ||want||_2: for gradients in bf16, where some
// entries are rounding noise around zero (the attention key bias: softmax
// ignores it) that an elementwise bound relative to the tensor's largest entry
// cannot judge, while a wrong gradient still moves the norm.
void expect_close_l2(const Tensor& got, const Tensor& want, double rel, const std::string& what) {
  CHECK_THAT(got.defined() && got.shape() == want.shape() && got.dtype() == want.dtype(), what, ": ",
             got.defined() ? shape_str(got.shape()) : std::string("undefined"), " vs ", shape_str(want.shape()));
  const auto g = host(got).to_vector<double>();
  const auto w = want.contiguous().to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    CHECK_THAT(std::isfinite(g[i]), what, " element ", i, ": cuda ", g[i], ", cpu ", w[i]);
    diff += (g[i] - w[i]) * (g[i] - w[i]);
    norm += w[i] * w[i];
  }
  CHECK_THAT(std::sqrt(diff) <= rel * std::sqrt(norm) + 1e-12, what, ": relative L2 error ",
             std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300), " > ", rel);
}

// Bit-identical values (NaN matches NaN, -0 is not +0).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  CHECK_THAT(got.shape() == want.shape() && got.dtype() == want.dtype(), what, ": ", shape_str(got.shape()), " ",
             dtype_name(got.dtype()), " vs ", shape_str(want.shape()), " ", dtype_name(want.dtype()));
  const auto g = host(got).to_vector<double>();
  const auto w = want.contiguous().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(w[i])) || (g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i]));
    CHECK_THAT(same, what, " element ", i, ": cuda ", g[i], ", cpu ", w[i]);
  }
}

Tensor dev(const Tensor& t) {
  return to_device(t.detach(), kDev);  // never an alias of t
}

// The same values on the device, laid out transposed in memory (a strided view).
Tensor dev_transposed(const Tensor& t) {
  if (t.dim() < 2) return dev(t);
  return dev(t.transpose(-1, -2).contiguous()).transpose(-1, -2);
}

const kernels::Backend& cpu_k() { return kernels::backend(kCPU); }
const kernels::Backend& cuda_k() { return kernels::backend(kDev); }

Tensor empty_dev(const Shape& s, DType t) { return empty(s, TensorOptions(t).with_device(kDev)); }

uint64_t seed_of(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

const std::vector<DType> kAllTypes = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                      DType::i32, DType::i64, DType::u8,   DType::boolean};

// ---------------------------------------------------------------------------
// runtime
// ---------------------------------------------------------------------------
int run_runtime() {
  Suite s{"cuda.runtime"};
  s.run("device is listed", [] {
    CHECK_THAT(cuda_device_count() >= 1, "count ", cuda_device_count());
    CHECK_THAT(cuda_unavailable_reason().empty(), cuda_unavailable_reason());
    std::printf("    %d device(s); cuda:0 is %s\n", cuda_device_count(), cuda::device_name(0).c_str());
  });
  s.run("round trip of every dtype is exact", [] {
    Generator gen(7);
    Tensor base = mul(randn({5, 7}, DType::f64, &gen), 40.0);
    for (DType t : kAllTypes) {
      Tensor h = base.to(t);
      Tensor d = to_device(h, kDev);
      CHECK_THAT(d.device() == kDev, "to_device put it on ", d.device().str());
      Tensor back = to_device(d, kCPU);
      CHECK_THAT(back.device() == kCPU, "back on ", back.device().str());
      CHECK_THAT(std::memcmp(back.raw_data(), h.contiguous().raw_data(), h.numel() * itemsize(t)) == 0,
                 "bytes differ for ", dtype_name(t));
    }
  });
  s.run("strided sources and destinations, both ways", [] {
    Generator gen(8);
    Tensor a = randn({6, 9}, DType::f32, &gen);
    Tensor at = a.t();  // non-contiguous host view
    expect_same(to_device(at, kDev), at.contiguous(), "host view -> device");
    Tensor d = empty_dev({9, 6}, DType::f32);
    Tensor dv = dev(zeros({6, 9})).t();  // non-contiguous device view [9, 6]
    dv.copy_(at);                        // host -> strided device
    expect_same(dv, at, "host -> strided device view");
    Tensor hv = zeros({6, 9}).t();
    hv.copy_(dv);  // strided device -> strided host (through the CPU table's copy)
    expect_same(hv, at, "strided device -> strided host view");
    Tensor conv = zeros({9, 6}, DType::f64);
    conv.copy_(dv);  // device f32 -> host f64
    expect_same(conv, at.to(DType::f64), "device f32 -> host f64");
    d.copy_(to_device(at.to(DType::bf16), kCPU));  // host bf16 -> device f32
    expect_same(d, at.to(DType::bf16).to(DType::f32), "host bf16 -> device f32");
    CHECK_THAT(dev(a).to_vector<float>() == a.to_vector<float>(), "to_vector of a device tensor");
    CHECK_THAT(dev(a).select(0, 2).select(0, 3).item<float>() == a.to_vector<float>()[2 * 9 + 3], "item");
  });
  s.run("dtype conversions on the device match the CPU bit for bit", [] {
    std::vector<double> special = {0.0, -0.0, 1.0, -2.5, 3.1415926535, 1e-8, 6e-5, 65504.0, 65520.0, 70000.0,
                                   1e-40, 3.4e38, 1e39, -1e39, INFINITY, -INFINITY, NAN, 0.333333333333, 255.0, 7.5};
    Tensor sp = from_vector(special, {static_cast<int64_t>(special.size())});
    for (DType from : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
      Tensor src = sp.to(from);
      for (DType to : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::boolean})
        expect_same(dev(src).to(to), src.to(to), std::string(dtype_name(from)) + " -> " + dtype_name(to));
    }
    // Integers and in-range values for the integer targets.
    Generator gen(9);
    // integers and halves in [0, 200): every conversion is defined
    Tensor vals = div(mul(rand({8, 11}, DType::f64, &gen), 400.0).to(DType::i64).to(DType::f64), 2.0);
    for (DType from : kAllTypes) {
      Tensor src = vals.to(from);
      Tensor src_view = src.t().contiguous().t();  // strided
      for (DType to : kAllTypes) {
        Tensor want = empty(src.shape(), TensorOptions(to));
        cpu_k().copy(src_view, want);
        Tensor got = dev(zeros({11, 8}, to)).t();  // strided destination
        cuda_k().copy(dev_transposed(src), got);
        expect_same(got, want, std::string("strided ") + dtype_name(from) + " -> " + dtype_name(to));
      }
    }
  });
  s.run("fill, contiguous and strided, every dtype", [] {
    for (DType t : kAllTypes) {
      for (double v : {0.0, 1.0, 2.5, 100.25}) {
        Tensor want = zeros({4, 10}, t);
        want.slice(1, 0, 10, 3).fill_(v);
        Tensor got = dev(zeros({4, 10}, t));
        got.slice(1, 0, 10, 3).fill_(v);
        expect_same(got, want, std::string("fill ") + dtype_name(t) + " " + std::to_string(v));
        expect_same(full({3, 5}, v, TensorOptions(t).with_device(kDev)), full({3, 5}, v, t), "full");
      }
    }
    for (DType t : {DType::f32, DType::bf16, DType::f16})
      for (double v : {-3.5, 1e-30, 70000.0, -static_cast<double>(INFINITY)})
        expect_same(full({7}, v, TensorOptions(t).with_device(kDev)), full({7}, v, t), "full special");
  });
  s.run("allocator reuses freed blocks without cudaMalloc", [] {
    cuda::synchronize(0);
    cuda::empty_cache(0);
    const auto s0 = cuda::memory_stats(0);
    CHECK_THAT(s0.reserved_bytes == s0.allocated_bytes, "after empty_cache reserved ", s0.reserved_bytes,
               " != allocated ", s0.allocated_bytes);
    { Tensor a = empty_dev({1000, 1000}, DType::f32); }
    const auto s1 = cuda::memory_stats(0);
    CHECK_THAT(s1.device_mallocs == s0.device_mallocs + 1, "first allocation: ", s1.device_mallocs - s0.device_mallocs,
               " cudaMalloc calls");
    CHECK_THAT(s1.allocated_bytes == s0.allocated_bytes, "allocated back to ", s0.allocated_bytes, ", is ",
               s1.allocated_bytes);
    CHECK_THAT(s1.reserved_bytes >= s0.reserved_bytes + 4000000, "the freed block stays reserved");
    { Tensor b = empty_dev({1000, 1000}, DType::f32); }
    const auto s2 = cuda::memory_stats(0);
    CHECK_THAT(s2.device_mallocs == s1.device_mallocs, "same size again called cudaMalloc");
    CHECK_THAT(s2.cache_hits == s1.cache_hits + 1, "no cache hit");
    // A steady training-like loop: after the first step, no cudaMalloc at all.
    Generator gen(10);
    Tensor w = dev(randn({64, 32}, DType::f32, &gen)).requires_grad_(true);
    Tensor x = dev(randn({16, 64}, DType::f32, &gen));
    auto step = [&] {
      w.zero_grad();
      Tensor loss = mean(mul(tanh(matmul(x, w)), 2.0));
      loss.backward();
      return loss.item<float>();
    };
    step();
    step();
    const auto s3 = cuda::memory_stats(0);
    for (int i = 0; i < 5; ++i) step();
    const auto s4 = cuda::memory_stats(0);
    CHECK_THAT(s4.device_mallocs == s3.device_mallocs, "steady state called cudaMalloc ",
               s4.device_mallocs - s3.device_mallocs, " times");
    CHECK_THAT(s4.allocations > s3.allocations, "the loop allocated nothing?");
  });
  s.run("allocator accounting: size classes, peak, reserved, empty_cache", [] {
    cuda::synchronize(0);
    cuda::empty_cache(0);
    const auto base = cuda::memory_stats(0);
    cuda::reset_peak_memory_stats(0);
    {
      Tensor small = empty_dev({250}, DType::f32);  // 1000 bytes -> a 1024-byte class
      auto st = cuda::memory_stats(0);
      CHECK_THAT(st.allocated_bytes == base.allocated_bytes + 1024, "1000 bytes took ",
                 st.allocated_bytes - base.allocated_bytes);
      CHECK_THAT(st.requested_bytes == base.requested_bytes + 1000, "requested ", st.requested_bytes);
      Tensor a = empty_dev({1 << 20}, DType::f32);  // 4 MiB: a power of two, its own class
      Tensor b = empty_dev({(1 << 20) + 1}, DType::f32);  // just over: the next class, 5 MiB
      st = cuda::memory_stats(0);
      CHECK_THAT(st.allocated_bytes == base.allocated_bytes + 1024 + (4u << 20) + (5u << 20), "allocated ",
                 st.allocated_bytes - base.allocated_bytes);
      CHECK_THAT(st.peak_allocated_bytes == st.allocated_bytes, "peak ", st.peak_allocated_bytes);
      CHECK_THAT(st.reserved_bytes >= st.allocated_bytes, "reserved < allocated");
    }
    const auto after = cuda::memory_stats(0);
    CHECK_THAT(after.allocated_bytes == base.allocated_bytes, "allocated not back to base");
    CHECK_THAT(after.peak_allocated_bytes == base.allocated_bytes + 1024 + (9u << 20), "peak lost: ",
               after.peak_allocated_bytes);
    CHECK_THAT(after.reserved_bytes == base.reserved_bytes + 1024 + (9u << 20), "freed blocks not cached");
    cuda::empty_cache(0);
    const auto emptied = cuda::memory_stats(0);
    CHECK_THAT(emptied.reserved_bytes == emptied.allocated_bytes, "empty_cache kept ",
               emptied.reserved_bytes - emptied.allocated_bytes, " bytes");
    CHECK_THAT(emptied.device_frees >= after.device_frees + 3, "empty_cache freed ", emptied.device_frees - after.device_frees);
    cuda::reset_peak_memory_stats(0);
    CHECK_THAT(cuda::memory_stats(0).peak_allocated_bytes == emptied.allocated_bytes, "reset_peak");
  });
  s.run("out of memory is a loom::Error with the accounting, and recoverable", [] {
    bool thrown = false;
    try {
      Tensor huge = empty_dev({int64_t{1} << 48}, DType::f32);  // 1 PiB
    } catch (const Error& e) {
      thrown = true;
      const std::string what = e.what();
      CHECK_THAT(what.find("out of memory") != std::string::npos && what.find("cuda:0") != std::string::npos, what);
    }
    CHECK_THAT(thrown, "a 1 PiB allocation succeeded");
    Tensor ok = full({1000}, 3.0, TensorOptions(DType::f32).with_device(kDev));
    CHECK_THAT(sum(ok).item<float>() == 3000.0f, "device unusable after the failed allocation");
  });
  s.run("operands on the wrong device are loom::Errors, not crashes", [] {
    Tensor c = dev(ones({3}));
    Tensor h = ones({3});
    auto throws_with = [](const std::function<void()>& f, const std::string& part) {
      try {
        f();
      } catch (const Error& e) {
        CHECK_THAT(std::string(e.what()).find(part) != std::string::npos, "message '", e.what(), "' lacks '", part, "'");
        return;
      }
      CHECK_THAT(false, "no error (expected one mentioning '", part, "')");
    };
    throws_with([&] { add(c, h); }, "different devices");
    throws_with([&] { eq(c, h); }, "is on cpu, expected cuda:0");                            // CUDA kernel, host operand
    throws_with([&] { where(gt(h, zeros({})), h, c); }, "reached the CPU kernel");          // CPU kernel, device operand
    throws_with([&] { empty({2}, TensorOptions().with_device(cuda_device(cuda_device_count()))); }, "does not exist");
  });
  s.run("gradients flow back through to_device", [] {
    Generator gen(11);
    Tensor x = randn({4, 3}, DType::f32, &gen).requires_grad_(true);
    Tensor y = to_device(x, kDev);
    sum(mul(y, y)).backward();
    CHECK_THAT(x.grad().defined() && x.grad().device() == kCPU, "no host gradient");
    expect_close(x.grad(), mul(x.detach(), 2.0), kF32, "d sum(x^2)/dx");
  });
  return s.finish();
}

// ---------------------------------------------------------------------------
// kernels
// ---------------------------------------------------------------------------
// Values for dtype t: small integers for the integer types, normals otherwise.
Tensor values(const Shape& shape, DType t, Generator& gen) {
  Tensor n = randn(shape, DType::f64, &gen);
  if (is_floating(t)) return n.to(t);
  if (t == DType::boolean) return gt(n, zeros({}, DType::f64));
  if (t == DType::u8) return mul(abs(n), 20.0).to(t);
  return mul(n, 20.0).to(t);
}

int run_kernels() {
  Suite s{"cuda.kernels"};
  using kernels::Binary;
  using kernels::Compare;
  using kernels::Reduce;
  using kernels::Unary;

  s.run("binary, compare, where: every dtype, broadcast and strided", [] {
    Generator gen(20);
    for (DType t : kAllTypes) {
      Tensor a = values({3, 4, 5}, t, gen), b = values({4, 1}, t, gen), c = gt(randn({5}, DType::f32, &gen), zeros({}));
      const std::string n = dtype_name(t);
      for (auto [op, name] : std::vector<std::pair<Compare, const char*>>{
               {Compare::eq, "eq"}, {Compare::lt, "lt"}, {Compare::ge, "ge"}}) {
        Tensor want = empty({3, 4, 5}, DType::boolean), got = empty_dev({3, 4, 5}, DType::boolean);
        Tensor bb = b.expand({3, 4, 5});
        cpu_k().compare(op, a, bb, want);
        cuda_k().compare(op, dev_transposed(a), dev(b).expand({3, 4, 5}), got);
        expect_same(got, want, n + " " + name);
      }
      Tensor want = empty({3, 4, 5}, TensorOptions(t)), got = empty_dev({3, 4, 5}, t);
      cpu_k().where(c.expand({3, 4, 5}), a, b.expand({3, 4, 5}), want);
      cuda_k().where(dev(c).expand({3, 4, 5}), dev_transposed(a), dev(b).expand({3, 4, 5}), got);
      expect_same(got, want, n + " where");
      if (t == DType::boolean || t == DType::u8) continue;
      for (auto [op, name] : std::vector<std::pair<Binary, const char*>>{
               {Binary::add, "add"}, {Binary::sub, "sub"}, {Binary::mul, "mul"}, {Binary::maximum, "maximum"},
               {Binary::minimum, "minimum"}, {Binary::div, "div"}}) {
        if (op == Binary::div && !is_floating(t)) continue;
        Tensor w2 = empty({3, 4, 5}, TensorOptions(t)), g2 = empty_dev({3, 4, 5}, t);
        cpu_k().binary(op, a, b.expand({3, 4, 5}), w2);
        cuda_k().binary(op, dev_transposed(a), dev(b).expand({3, 4, 5}), g2);
        expect_same(g2, w2, n + " " + name);  // IEEE-exact ops: identical after rounding
      }
    }
  });
  s.run("unary and unary_backward in f32, f64, bf16, f16; integer unary", [] {
    Generator gen(21);
    const std::vector<std::pair<Unary, const char*>> ops = {
        {Unary::neg, "neg"},   {Unary::exp, "exp"},         {Unary::log, "log"},           {Unary::sqrt, "sqrt"},
        {Unary::rsqrt, "rsqrt"}, {Unary::abs, "abs"},       {Unary::tanh, "tanh"},         {Unary::sigmoid, "sigmoid"},
        {Unary::relu, "relu"}, {Unary::gelu_erf, "gelu_erf"}, {Unary::gelu_tanh, "gelu_tanh"}, {Unary::silu, "silu"},
        {Unary::clamp, "clamp"}, {Unary::pow_scalar, "pow"}};
    kernels::UnaryParams p;
    p.lo = -0.5, p.hi = 0.7, p.has_lo = p.has_hi = true, p.exponent = 2.5;
    for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
      Tensor x = add(mul(rand({33, 17}, DType::f64, &gen), 3.0), 0.25).to(t);  // positive, for log/sqrt/pow
      Tensor xs = randn({33, 17}, t, &gen);
      Tensor g = randn({33, 17}, t, &gen);
      for (auto [op, name] : ops) {
        const bool positive = op == Unary::log || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::pow_scalar;
        Tensor in = positive ? x : xs;
        Tensor want = empty(in.shape(), TensorOptions(t)), got = empty_dev(in.shape(), t);
        cpu_k().unary(op, in, want, p);
        cuda_k().unary(op, dev_transposed(in), got, p);
        expect_close(got, want, tolerance_for(t), std::string(dtype_name(t)) + " " + name);
        Tensor gw = empty(in.shape(), TensorOptions(t)), gg = empty_dev(in.shape(), t);
        cpu_k().unary_backward(op, g, in, want, gw, p);
        cuda_k().unary_backward(op, dev(g), dev_transposed(in), dev(want), gg, p);
        expect_close(gg, gw, tolerance_for(t), std::string(dtype_name(t)) + " " + name + " backward");
      }
    }
    for (DType t : {DType::i32, DType::i64}) {
      Tensor x = values({9, 13}, t, gen);
      for (Unary op : {Unary::neg, Unary::abs, Unary::relu, Unary::clamp}) {
        kernels::UnaryParams q;
        q.lo = -7, q.hi = 9, q.has_lo = q.has_hi = true;
        Tensor want = empty(x.shape(), TensorOptions(t)), got = empty_dev(x.shape(), t);
        cpu_k().unary(op, x, want, q);
        cuda_k().unary(op, dev_transposed(x), got, q);
        expect_same(got, want, std::string(dtype_name(t)) + " integer unary");
      }
    }
  });
  s.run("large and many-dim pointwise (grid-stride, unmerged dims)", [] {
    Generator gen(22);
    Tensor a = randn({1000, 1037}, DType::f32, &gen), b = randn({1037}, DType::f32, &gen);
    expect_same(add(dev(a), dev(b)), add(a, b), "[1000, 1037] + [1037]");
    Tensor c4 = randn({7, 9, 11, 13}, DType::f32, &gen);
    Tensor d = randn({9, 1, 11}, DType::f32, &gen);
    // [13, 9, 7, 11] laid out as [7, 9, 11, 13]: no two dims merge
    expect_same(mul(dev(c4).permute({3, 1, 0, 2}), dev(d)), mul(c4.permute({3, 1, 0, 2}), d),
                "4-d permuted * broadcast");
    expect_close(exp(dev(c4).permute({3, 1, 0, 2})), exp(c4.permute({3, 1, 0, 2})), kF32, "exp over a permuted 4-d");
  });
  s.run("reduce: sum, max, argmax over [outer, r, inner] (ties, NaN)", [] {
    Generator gen(23);
    const std::vector<std::array<int64_t, 3>> shapes = {{1, 100003, 1}, {37, 513, 1}, {5, 300, 33}, {3, 1, 7},
                                                        {2, 70, 1000},  {1000, 3, 1}, {4, 2049, 2}};
    for (DType t : {DType::f32, DType::f64}) {
      for (const auto& sh : shapes) {
        const int64_t o = sh[0], r = sh[1], in = sh[2];
        Tensor x = randn({o, r, in}, t, &gen);
        Tensor ties = mul(x, 2.0).to(DType::i64).to(t);  // few distinct values: many ties
        for (bool with_nan : {false, true}) {
          Tensor src = ties;
          if (with_nan && o * in > 1) {
            src = ties.clone();
            NoGradGuard guard;
            src.narrow(0, 0, 1).narrow(1, r / 2, 1).narrow(2, 0, 1).fill_(NAN);
          }
          const std::string n = std::string(dtype_name(t)) + " [" + std::to_string(o) + ", " + std::to_string(r) +
                                ", " + std::to_string(in) + "]" + (with_nan ? " NaN" : "");
          for (Reduce op : {Reduce::sum, Reduce::max, Reduce::argmax}) {
            const DType ot = op == Reduce::argmax ? DType::i64 : t;
            Tensor want = empty({o, in}, TensorOptions(ot)), got = empty_dev({o, in}, ot);
            cpu_k().reduce(op, src, o, r, in, want);
            cuda_k().reduce(op, dev(src), o, r, in, got);
            if (op == Reduce::sum) expect_close(got, want, t == DType::f32 ? Tolerance{1e-6, 1e-6, 1e-6} : kF64, n + " sum");
            else expect_same(got, want, n + (op == Reduce::max ? " max" : " argmax"));
          }
        }
      }
    }
  });
  s.run("softmax / log_softmax forward and backward, rows (walked: 5000 and 7 wide; in registers: 1000 and 4096) "
        "and columns", [] {
    Generator gen(24);
    for (DType t : {DType::f32, DType::f64}) {
      for (const auto& sh : std::vector<std::array<int64_t, 3>>{
               {64, 5000, 1}, {3, 77, 19}, {1000, 7, 1}, {2, 1, 5}, {300, 1000, 1}, {64, 4096, 1}}) {
        const int64_t o = sh[0], r = sh[1], in = sh[2];
        Tensor x = mul(randn({o, r, in}, t, &gen), 3.0);
        if (in == 1 && o > 1) {  // a fully masked row
          NoGradGuard guard;
          x.narrow(0, 1, 1).fill_(-INFINITY);
        }
        Tensor g = randn({o, r, in}, t, &gen);
        for (bool log : {false, true}) {
          const std::string n = std::string(log ? "log_softmax " : "softmax ") + dtype_name(t) + " [" +
                                std::to_string(o) + ", " + std::to_string(r) + ", " + std::to_string(in) + "]";
          Tensor want = empty(x.shape(), TensorOptions(t)), got = empty_dev(x.shape(), t);
          cpu_k().softmax(x, want, o, r, in, log);
          cuda_k().softmax(dev(x), got, o, r, in, log);
          expect_close(got, want, tolerance_for(t), n);
          Tensor bw = empty(x.shape(), TensorOptions(t)), bg = empty_dev(x.shape(), t);
          cpu_k().softmax_backward(g, want, bw, o, r, in, log);
          cuda_k().softmax_backward(dev(g), dev(want), bg, o, r, in, log);
          expect_close(bg, bw, tolerance_for(t), n + " backward");
        }
      }
    }
  });
  s.run("layer_norm / rms_norm forward and backward (block per row: 1000 x 3001 f32, 100 x 300 f64; warp per row: "
        "1000 x 768 f32, spread over a block: 1000 x 3000 f32; optional weight, bias and fused residual)", [] {
    Generator gen(25);
    struct Case {
      DType t;
      int64_t rows, cols;
    };
    for (const Case c : {Case{DType::f32, 1000, 3001}, Case{DType::f64, 100, 300}, Case{DType::f32, 1000, 768},
                         Case{DType::f32, 1000, 3000}}) {
      const DType t = c.t;
      for (bool rms : {false, true}) {
        for (bool affine : {true, false}) {
          for (bool fused : {false, true}) {
            kernels::NormShape ns;
            ns.rows = c.rows, ns.cols = c.cols, ns.eps = 1e-5, ns.rms = rms;
            const Shape rc{ns.rows, ns.cols};
            Tensor x = add(mul(randn(rc, t, &gen), 2.0), 0.5);
            Tensor r = fused ? randn(rc, t, &gen) : Tensor();
            Tensor w = affine ? randn({ns.cols}, t, &gen) : Tensor();
            Tensor b = affine && !rms ? randn({ns.cols}, t, &gen) : Tensor();
            Tensor g = randn(rc, t, &gen);
            Tensor gs = fused ? randn(rc, t, &gen) : Tensor();
            auto opt_dev = [](const Tensor& v) { return v.defined() ? dev(v) : Tensor(); };
            auto opt_empty = [&](bool want, const Shape& shape) { return want ? empty(shape, TensorOptions(t)) : Tensor(); };
            auto opt_empty_dev = [&](bool want, const Shape& shape) { return want ? empty_dev(shape, t) : Tensor(); };
            const std::string n = std::string(rms ? "rms_norm " : "layer_norm ") + dtype_name(t) + " cols " +
                                  std::to_string(c.cols) + (affine ? " affine" : "") + (fused ? " residual" : "");
            Tensor out = empty(rc, TensorOptions(t)), sum = opt_empty(fused, rc);
            Tensor mean = empty({ns.rows}, TensorOptions(t)), rstd = empty({ns.rows}, TensorOptions(t));
            Tensor dout = empty_dev(rc, t), dsum = opt_empty_dev(fused, rc);
            Tensor dmean = empty_dev({ns.rows}, t), drstd = empty_dev({ns.rows}, t);
            cpu_k().norm(x, r, w, b, out, sum, mean, rstd, ns);
            cuda_k().norm(dev(x), opt_dev(r), opt_dev(w), opt_dev(b), dout, dsum, dmean, drstd, ns);
            expect_close(dout, out, tolerance_for(t), n + " out");
            if (fused) expect_close(dsum, sum, tolerance_for(t), n + " sum");
            expect_close(dmean, mean, tolerance_for(t), n + " mean");
            expect_close(drstd, rstd, tolerance_for(t), n + " rstd");
            const Tensor& normalised = fused ? sum : x;
            Tensor gx = empty(rc, TensorOptions(t));
            Tensor gw = opt_empty(affine, {ns.cols}), gb = opt_empty(affine && !rms, {ns.cols});
            Tensor dgx = empty_dev(rc, t);
            Tensor dgw = opt_empty_dev(affine, {ns.cols}), dgb = opt_empty_dev(affine && !rms, {ns.cols});
            cpu_k().norm_backward(g, gs, normalised, w, mean, rstd, gx, Tensor(), gw, gb, ns);
            cuda_k().norm_backward(dev(g), opt_dev(gs), dev(normalised), opt_dev(w), dev(mean), dev(rstd), dgx,
                                   Tensor(), dgw, dgb, ns);
            expect_close(dgx, gx, tolerance_for(t), n + " grad_x");
            if (affine) expect_close(dgw, gw, tolerance_for(t), n + " grad_w");
            if (affine && !rms) expect_close(dgb, gb, tolerance_for(t), n + " grad_b");
          }
        }
      }
    }
  });
  s.run("fused residual layer_norm with a bf16 branch and bf16 output (autocast's), and its bf16 gradients "
        "(warp per row: 768 columns, block-wide: 3000; widened around the block per row: 3001)", [] {
    Generator gen(27);
    for (int64_t cols : {768, 3000, 3001}) {
      kernels::NormShape ns;
      ns.rows = 1000, ns.cols = cols, ns.eps = 1e-5;
      const Shape rc{ns.rows, ns.cols};
      const std::string n = "cols " + std::to_string(cols);
      Tensor x = add(mul(randn(rc, DType::f32, &gen), 2.0), 0.5).to(DType::bf16), r = randn(rc, DType::f32, &gen);
      Tensor w = randn({cols}, DType::f32, &gen), b = randn({cols}, DType::f32, &gen);
      Tensor out = empty(rc, DType::bf16), sum = empty(rc), mean = empty({ns.rows}), rstd = empty({ns.rows});
      Tensor dout = empty_dev(rc, DType::bf16), dsum = empty_dev(rc, DType::f32);
      Tensor dmean = empty_dev({ns.rows}, DType::f32), drstd = empty_dev({ns.rows}, DType::f32);
      cpu_k().norm(x, r, w, b, out, sum, mean, rstd, ns);
      cuda_k().norm(dev(x), dev(r), dev(w), dev(b), dout, dsum, dmean, drstd, ns);
      expect_close(dout, out, tolerance_for(DType::bf16), n + " bf16 out");
      expect_close(dsum, sum, tolerance_for(DType::f32), n + " sum");
      expect_close(drstd, rstd, tolerance_for(DType::f32), n + " rstd");
      Tensor g = randn(rc, DType::f32, &gen).to(DType::bf16), gs = randn(rc, DType::f32, &gen);
      Tensor gx = empty(rc), gxh = empty(rc, DType::bf16), gw = empty({cols}), gb = empty({cols});
      Tensor dgx = empty_dev(rc, DType::f32), dgxh = empty_dev(rc, DType::bf16);
      Tensor dgw = empty_dev({cols}, DType::f32), dgb = empty_dev({cols}, DType::f32);
      cpu_k().norm_backward(g, gs, sum, w, mean, rstd, gx, gxh, gw, gb, ns);
      cuda_k().norm_backward(dev(g), dev(gs), dev(sum), dev(w), dev(mean), dev(rstd), dgx, dgxh, dgw, dgb, ns);
      expect_close(dgx, gx, tolerance_for(DType::f32), n + " grad_x");
      expect_close(dgxh, gxh, tolerance_for(DType::bf16), n + " grad_x bf16");
      expect_close(dgw, gw, tolerance_for(DType::f32), n + " grad_w");
      expect_close(dgb, gb, tolerance_for(DType::f32), n + " grad_b");
    }
  });
  s.run("cross_entropy forward and backward (64 x 10000, i32 and i64 targets, smoothing, ignore)", [] {
    Generator gen(26);
    for (DType tt : {DType::i64, DType::i32}) {
      Tensor logits = mul(randn({64, 10000}, DType::f32, &gen), 2.0);
      Tensor targets = randint(0, 10000, {64}, tt, &gen);
      {
        NoGradGuard guard;
        targets.narrow(0, 5, 3).fill_(7);  // ignore_index below
      }
      Tensor scale = rand({64}, DType::f32, &gen);
      for (double smoothing : {0.0, 0.1}) {
        kernels::CrossEntropyParams p{7, smoothing};
        const std::string n = std::string("targets ") + dtype_name(tt) + " smoothing " + std::to_string(smoothing);
        Tensor want = empty({64}, DType::f32), got = empty_dev({64}, DType::f32);
        Tensor want_lse = empty({64}, DType::f32), got_lse = empty_dev({64}, DType::f32);
        cpu_k().cross_entropy(logits, targets, want, want_lse, p);
        cuda_k().cross_entropy(dev(logits), dev(targets), got, got_lse, p);
        expect_close(got, want, kF32, n + " loss");
        expect_close(got_lse, want_lse, kF32, n + " log-sum-exp");
        Tensor gw = empty(logits.shape(), DType::f32), gg = empty_dev(logits.shape(), DType::f32);
        cpu_k().cross_entropy_backward(logits, targets, want_lse, scale, gw, p);
        cuda_k().cross_entropy_backward(dev(logits), dev(targets), got_lse, dev(scale), gg, p);
        expect_close(gg, gw, kF32, n + " grad");
      }
    }
  });
  s.run("matmul through cuBLAS: odd sizes, transposed operands, broadcast batch, K = 0, f64, bf16, f16", [] {
    Generator gen(27);
    auto both = [&](const Tensor& a, const Tensor& b, Tolerance tol, const std::string& n) {
      expect_close(matmul(dev_transposed(a), dev(b)), matmul(a, b), tol, n + " (a strided)");
      expect_close(matmul(dev(a), dev_transposed(b)), matmul(a, b), tol, n + " (b strided)");
      expect_close(matmul(dev(a), dev(b)), matmul(a, b), tol, n);
    };
    both(randn({257, 129}, DType::f32, &gen), randn({129, 65}, DType::f32, &gen), kF32, "257x129 . 129x65");
    both(randn({512, 1024}, DType::f32, &gen), randn({1024, 256}, DType::f32, &gen), kF32, "512x1024 . 1024x256");
    both(randn({3, 31, 17}, DType::f32, &gen), randn({17, 9}, DType::f32, &gen), kF32, "batched . broadcast");
    both(randn({5, 64, 32}, DType::f64, &gen), randn({5, 32, 48}, DType::f64, &gen), kF64, "bmm f64");
    both(randn({1, 7}, DType::f32, &gen), randn({7, 1}, DType::f32, &gen), kF32, "1x7 . 7x1");
    for (DType half : {DType::bf16, DType::f16})  // tensor cores, f32 accumulation, one rounding
      both(randn({2, 96, 130}, half, &gen), randn({130, 72}, half, &gen), kHalf,
           std::string("batched ") + dtype_name(half));
    expect_same(matmul(dev(zeros({4, 0})), dev(zeros({0, 5}))), zeros({4, 5}), "K = 0");
    Tensor a = randn({6, 8}, DType::f32, &gen), b = randn({8, 4}, DType::f32, &gen);
    Tensor a_odd = dev(randn({6, 16}, DType::f32, &gen)).slice(1, 0, 16, 2);  // stride 2: copied first
    a_odd.copy_(a);
    expect_close(matmul(a_odd, dev(b)), matmul(a, b), kF32, "column stride 2");
  });
  s.run("linear with its epilogue (cuBLASLt): bias, GELU and its input, weight and bias gradients", [] {
    Generator gen(33);
    for (DType t : {DType::f32, DType::bf16, DType::f16}) {
      const std::string n = dtype_name(t);
      Tensor x = randn({300, 96}, t, &gen), w = randn({136, 96}, t, &gen), b = randn({136}, t, &gen);
      for (auto e : {kernels::LinearEpilogue::bias, kernels::LinearEpilogue::bias_gelu_tanh}) {
        const bool gelu = e == kernels::LinearEpilogue::bias_gelu_tanh;
        const std::string what = n + (gelu ? " bias+gelu" : " bias");
        Tensor want = empty({300, 136}, TensorOptions(t)), want_pre = gelu ? empty({300, 136}, TensorOptions(t)) : Tensor();
        LOOM_CHECK(cpu_k().linear(x, w, b, e, want, want_pre), "the CPU declined ", what);
        Tensor got = empty_dev({300, 136}, t), got_pre = gelu ? empty_dev({300, 136}, t) : Tensor();
        LOOM_CHECK(cuda_k().linear(dev(x), dev(w), dev(b), e, got, got_pre), "the device declined ", what);
        expect_close(got, want, tolerance_for(t), "linear " + what);
        if (gelu) expect_close(got_pre, want_pre, tolerance_for(t), "linear " + what + ": GELU's input");
      }
      Tensor g = randn({300, 136}, t, &gen);
      Tensor gw = empty_dev({136, 96}, t), gb = empty_dev({136}, t);
      if (!cuda_k().linear_weight_grad(dev(g), dev(x), gw, gb)) {
        std::printf("  note: %s weight gradient with the bias-gradient epilogue declined; the op composes it\n",
                    n.c_str());
        continue;
      }
      Tensor want_w = empty({136, 96}, TensorOptions(t)), want_b = empty({136}, TensorOptions(t));
      if (!cpu_k().linear_weight_grad(g, x, want_w, want_b)) {  // halves: f32 products, rounded once
        const Tensor g32 = g.to(DType::f32);
        want_w = matmul(g32.t(), x.to(DType::f32)).to(t);
        want_b = sum(g32, {0}).to(t);
      }
      expect_close(gw, want_w, tolerance_for(t), "linear " + n + " weight gradient");
      expect_close(gb, want_b, tolerance_for(t), "linear " + n + " bias gradient");
      if (!is_half(t)) continue;
      // Half products writing f32 gradients (an f32 master weight's under
      // autocast): the f32 product of the same values, unrounded.
      Tensor gw32 = empty_dev({136, 96}, DType::f32), gb32 = empty_dev({136}, DType::f32);
      CHECK_THAT(cuda_k().linear_weight_grad(dev(g), dev(x), gw32, gb32), "the device declined ", n,
                 " products with f32 gradients");
      const Tensor g32 = g.to(DType::f32);
      expect_close(gw32, matmul(g32.t(), x.to(DType::f32)), kF32, "linear " + n + " weight gradient in f32");
      expect_close(gb32, sum(g32, {0}), kF32, "linear " + n + " bias gradient in f32");
    }
    // The op takes the fused path on the device and its gradients match the CPU's.
    Tensor x = randn({4, 33, 64}, DType::f32, &gen), w = randn({128, 64}, DType::f32, &gen), b = randn({128}, DType::f32, &gen);
    Tensor xd = dev(x).requires_grad_(), wd = dev(w).requires_grad_(), bd = dev(b).requires_grad_();
    Tensor xc = x.clone().requires_grad_(), wc = w.clone().requires_grad_(), bc = b.clone().requires_grad_();
    const Tensor yd = linear_gelu(xd, wd, bd), yc = linear_gelu(xc, wc, bc);
    LOOM_CHECK(yd.grad_fn() != nullptr && yd.grad_fn()->name() == "linear_gelu",
               "linear_gelu on the device did not take the fused entry");
    expect_close(yd, yc, kF32, "linear_gelu op");
    sum(mul(yd, yd)).backward();
    sum(mul(yc, yc)).backward();
    expect_close(xd.grad(), xc.grad(), kF32, "linear_gelu op: x gradient");
    expect_close(wd.grad(), wc.grad(), kF32, "linear_gelu op: weight gradient");
    expect_close(bd.grad(), bc.grad(), kF32, "linear_gelu op: bias gradient");
  });
  s.run("index_select, embedding backward (repeated ids), gather, scatter, scatter_add", [] {
    Generator gen(28);
    Tensor x = randn({4, 10, 3}, DType::f32, &gen);
    Tensor idx = randint(0, 10, {13}, DType::i32, &gen);
    expect_same(index_select(dev_transposed(x), 1, dev(idx)), index_select(x, 1, idx), "index_select dim 1, i32");
    Tensor w = randn({50, 16}, DType::f32, &gen);
    Tensor ids = randint(0, 50, {8, 20}, DType::i64, &gen);  // 160 ids over 50 rows: repeats
    Tensor wc = w.clone().requires_grad_(true), wd = dev(w).requires_grad_(true);
    Tensor gout = randn({8, 20, 16}, DType::f32, &gen);
    sum(mul(embedding(wc, ids), gout)).backward();
    sum(mul(embedding(wd, dev(ids)), dev(gout))).backward();
    expect_close(wd.grad(), wc.grad(), kF32, "embedding grad");
    Tensor gi = randint(0, 3, {4, 5, 3}, DType::i64, &gen);
    expect_same(gather(dev(x), 1, dev(gi)), gather(x, 1, gi), "gather");
    Tensor base = randint(-5, 5, {4, 6}, DType::i64, &gen);
    Tensor si = randint(0, 6, {4, 9}, DType::i64, &gen);
    Tensor src = randint(-9, 9, {4, 9}, DType::i64, &gen);
    expect_same(scatter_add(dev(base), 1, dev(si), dev(src)), scatter_add(base, 1, si, src), "scatter_add i64");
    Tensor bf = randn({4, 6}, DType::f32, &gen), sf = randn({4, 9}, DType::f32, &gen);
    expect_close(scatter_add(dev(bf), 1, dev(si), dev(sf)), scatter_add(bf, 1, si, sf), kF32, "scatter_add f32");
    Tensor perm = from_vector<int64_t>({3, 0, 5, 1, 4, 2}, {1, 6}).expand({4, 6}).contiguous();
    Tensor s6 = randn({4, 6}, DType::f32, &gen);
    expect_same(scatter(dev(bf), 1, dev(perm), dev(s6)), scatter(bf, 1, perm, s6), "scatter (a permutation)");
  });
  s.run("rand / randn: the CPU's Philox stream", [] {
    for (DType t : {DType::f32, DType::f64}) {
      Generator g1(99), g2(99);
      g1.advance(5), g2.advance(5);
      expect_same(rand({1001}, TensorOptions(t).with_device(kDev), &g1), rand({1001}, t, &g2), "rand");
      expect_close(randn({1001}, TensorOptions(t).with_device(kDev), &g1), randn({1001}, t, &g2),
                   t == DType::f32 ? Tolerance{1e-6, 0, 1e-6} : Tolerance{1e-12, 0, 1e-12}, "randn");
      CHECK_THAT(g1.offset() == g2.offset(), "generator offsets differ");
    }
  });
  s.run("unfold2d / fold2d (im2col), the composed conv2d's kernels", [] {
    Generator gen(30);
    const kernels::Window2d win{3, 2, 2, 1, 1, 0};
    Tensor x = randn({2, 3, 9, 7}, DType::f32, &gen);
    const int64_t oh = (9 + 2 - 3) / 2 + 1, ow = (7 - 2) / 1 + 1;
    Tensor want = empty({2, 18, oh * ow}, TensorOptions(DType::f32)), got = empty_dev({2, 18, oh * ow}, DType::f32);
    cpu_k().unfold2d(x, want, win);
    cuda_k().unfold2d(dev(x), got, win);
    expect_same(got, want, "unfold2d");
    Tensor cols = randn({2, 18, oh * ow}, DType::f32, &gen);
    Tensor folded_want = zeros({2, 3, 9, 7}), folded_got = dev(zeros({2, 3, 9, 7}));
    cpu_k().fold2d(cols, folded_want, win);
    cuda_k().fold2d(dev(cols), folded_got, win);
    expect_close(folded_got, folded_want, kF32, "fold2d");
  });
  s.run("conv2d's entry (cuDNN): patch stem and 3x3, f32, bf16, f16, forward and every gradient", [] {
    Generator gen(31);
    struct Case {
      Shape x, w;
      kernels::Window2d win;
      Shape y;
    };
    const std::vector<Case> cases = {
        {{4, 3, 32, 32}, {64, 3, 8, 8}, {8, 8, 8, 8, 0, 0}, {4, 64, 4, 4}},        // a ViT patch stem
        {{2, 16, 17, 19}, {8, 16, 3, 3}, {3, 3, 1, 1, 1, 1}, {2, 8, 17, 19}},      // same-size 3x3
    };
    for (DType t : {DType::f32, DType::bf16, DType::f16}) {
      for (const Case& c : cases) {
        const std::string what = std::string(dtype_name(t)) + " x " + shape_str(c.x) + " w " + shape_str(c.w);
        Tensor x = randn(c.x, t, &gen), w = randn(c.w, t, &gen), b = randn({c.w[0]}, t, &gen);
        Tensor got = empty_dev(c.y, t);
        Tensor kept;
        if (!cuda_k().convolution(dev(x), dev(w), dev(b), got, c.win, &kept)) {
          // only the emulated device (the CPU entry) declines halves
          LOOM_CHECK(cuda::host_emulated_devices() > 0, "the device declined conv2d ", what);
          continue;
        }
        // The CPU's entry in f32 (halves widened, then rounded once) is the reference.
        const Tensor x32 = x.to(DType::f32), w32 = w.to(DType::f32), b32 = b.to(DType::f32);
        Tensor want = empty(c.y, TensorOptions(DType::f32));
        LOOM_CHECK(cpu_k().convolution(x32, w32, b32, want, c.win, nullptr), "the CPU declined conv2d ", what);
        expect_close(got, want.to(t), tolerance_for(t), "conv2d " + what);
        Tensor g = randn(c.y, t, &gen);
        Tensor gx = empty_dev(c.x, t), gw = empty_dev(c.w, t), gb = empty_dev({c.w[0]}, t);
        cuda_k().convolution_backward(dev(g), dev(x), dev(w), kept, gx, gw, gb, c.win);
        Tensor wx = empty(c.x, TensorOptions(DType::f32)), ww = empty(c.w, TensorOptions(DType::f32));
        Tensor wb = empty({c.w[0]}, TensorOptions(DType::f32));
        cpu_k().convolution_backward(g.to(DType::f32), x32, w32, Tensor(), wx, ww, wb, c.win);
        expect_close(gx, wx.to(t), tolerance_for(t), "conv2d grad x " + what);
        expect_close(gw, ww.to(t), tolerance_for(t), "conv2d grad w " + what);
        expect_close(gb, wb.to(t), tolerance_for(t), "conv2d grad b " + what);
      }
    }
  });
  s.run("conv2d op forward and backward against the CPU", [] {
    Generator gen(29);
    Tensor x = randn({2, 3, 17, 19}, DType::f32, &gen), w = randn({4, 3, 3, 3}, DType::f32, &gen);
    Tensor b = randn({4}, DType::f32, &gen);
    Tensor xc = x.clone().requires_grad_(true), xd = dev(x).requires_grad_(true);
    Tensor wc = w.clone().requires_grad_(true), wd = dev(w).requires_grad_(true);
    Tensor yc = conv2d(xc, wc, b, {2, 2}, {1, 1}), yd = conv2d(xd, wd, dev(b), {2, 2}, {1, 1});
    expect_close(yd, yc, kF32, "conv2d");
    Tensor g = randn(yc.shape(), DType::f32, &gen);
    sum(mul(yc, g)).backward();
    sum(mul(yd, dev(g))).backward();
    expect_close(xd.grad(), xc.grad(), kF32, "conv2d grad x");
    expect_close(wd.grad(), wc.grad(), kF32, "conv2d grad w");
  });
  s.run("log-mel spectrogram on the device (cuFFT spectra) against the CPU's", [] {
    Generator gen(32);
    // Power spectra alone: the entry against the CPU's float64 rfft.
    Tensor frames = randn({37, 512}, DType::f32, &gen);
    Tensor got = empty_dev({37, 257}, DType::f32);
    if (cuda_k().power_spectrum != nullptr) {
      LOOM_CHECK(cuda_k().power_spectrum(dev(frames), got), "the device declined power_spectrum");
      std::vector<float> want(37 * 257);
      for (int r = 0; r < 37; ++r) {
        std::vector<double> row(frames.data<float>() + r * 512, frames.data<float>() + (r + 1) * 512);
        const auto spec = audio::rfft(row);
        for (int b = 0; b < 257; ++b) want[r * 257 + b] = static_cast<float>(std::norm(spec[b]));
      }
      Tensor want_t = empty({37, 257}, DType::f32);
      std::copy(want.begin(), want.end(), want_t.data<float>());
      expect_close(got, want_t, Tolerance{1e-4, 1e-3, 1e-6}, "power spectra");
    }
    // Whole features of a batch of clips (the DFT products where there is no entry).
    Tensor clips = mul(randn({3, 8000}, DType::f32, &gen), 0.2);
    const Tensor want = audio::log_mel_spectrogram(clips);
    expect_close(audio::log_mel_spectrogram(dev(clips)), want, Tolerance{1e-3, 2e-3, 1e-6}, "log-mel");
  });
  s.run("loom's flash attention forward at head dims 64 and 128 against the CPU's composition (bf16)", [] {
    // The shapes the register-resident and the wgmma forwards take (whichever
    // LOOM_KERNEL_VARIANTS picks), in two query blocks and two key tiles of
    // either kernel, both cut mid-way.
    if (cuda::host_emulated_devices() > 0)
      throw NotBuilt("the CPU's kernels stand in for the device here: no flash kernel to check");
    Generator gen(35);
    const int64_t bh = 3, l = 200;
    for (const int64_t d : {int64_t{64}, int64_t{128}}) {
      for (const bool causal : {false, true}) {
        const std::string n = "d " + std::to_string(d) + (causal ? " causal" : "");
        const auto input = [&] { return randn({bh, l, d}, DType::f32, &gen).to(DType::bf16).to(DType::f32); };
        const Tensor q = input(), k = input(), v = input();
        const kernels::AttentionParams p{causal, 1.0 / std::sqrt(static_cast<double>(d))};
        const Tensor out = empty_dev({bh, l, d}, DType::bf16), lse = empty_dev({bh, l}, DType::f32);
        const auto bf = [](const Tensor& t) { return dev(t).to(DType::bf16); };
        CHECK_THAT(cuda_k().attention(bf(q), bf(k), bf(v), Tensor(), out, lse, p), "flash attention declined [3, 200, ",
                   d, "] bf16");
        const Tensor want = scaled_dot_product_attention(q, k, v, Tensor(), causal);
        expect_close(host(out).to(DType::f32), want, Tolerance{1e-2, 4e-3, 1e-6}, n + " out");
      }
    }
  });
  s.run("cuDNN fused attention against loom's flash attention: out, lse and gradients (bf16)", [] {
    if (cuda_k().vendor_attention == nullptr)
      throw NotBuilt("no vendor attention in this table (a build without cuDNN's frontend headers, or emulated)");
    Generator gen(33);
    const int64_t bh = 6, l = 200;  // not a whole number of tiles
    for (const int64_t d : {int64_t{64}, int64_t{128}}) {
      for (const bool causal : {false, true}) {
        const std::string n = "d " + std::to_string(d) + (causal ? " causal" : "");
        const auto input = [&] { return dev(randn({bh, l, d}, DType::f32, &gen)).to(DType::bf16); };
        const Tensor q = input(), k = input(), v = input(), grad_out = input();
        const kernels::AttentionParams p{causal, 1.0 / std::sqrt(static_cast<double>(d))};
        struct Run {
          Tensor out, lse, gq, gk, gv;
        };
        const auto run = [&](auto forward, auto backward, const char* who) {
          Run r{empty_dev({bh, l, d}, DType::bf16), empty_dev({bh, l}, DType::f32), empty_dev({bh, l, d}, DType::bf16),
                empty_dev({bh, l, d}, DType::bf16), empty_dev({bh, l, d}, DType::bf16)};
          CHECK_THAT(forward(q, k, v, Tensor(), r.out, r.lse, p), who, " declined [6, 200, ", d, "] bf16");
          backward(q, k, v, Tensor(), r.out, grad_out, r.lse, r.gq, r.gk, r.gv, p);
          return r;
        };
        const Run own = run(cuda_k().attention, cuda_k().attention_backward, "flash attention");
        const Run vendor = run(cuda_k().vendor_attention, cuda_k().vendor_attention_backward, "cuDNN");
        const auto f32 = [](const Tensor& t) { return host(t).to(DType::f32); };
        expect_close(vendor.out.to(DType::f32), f32(own.out), kHalf, n + " out");
        expect_close(vendor.lse, f32(own.lse), Tolerance{1e-4, 1e-4, 1e-5}, n + " lse");
        expect_close_l2(vendor.gq.to(DType::f32), f32(own.gq), 2e-2, n + " grad q");
        expect_close_l2(vendor.gk.to(DType::f32), f32(own.gk), 2e-2, n + " grad k");
        expect_close_l2(vendor.gv.to(DType::f32), f32(own.gv), 2e-2, n + " grad v");
      }
    }
    // Through the op and autograd: AttentionKernelGuard(vendor) runs cuDNN's
    // forward and then its backward, against the guard's fused kernel.
    const auto input = [&] { return dev(randn({2, 3, 200, 64}, DType::f32, &gen)).to(DType::bf16); };
    const Tensor q0 = input(), k0 = input(), v0 = input(), w = dev(randn({2, 3, 200, 64}, DType::f32, &gen));
    struct OpRun {
      Tensor out, gq, gk, gv;
    };
    const auto through_op = [&](AttentionKernel kernel) {
      AttentionKernelGuard guard(kernel);
      Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
             v = v0.clone().requires_grad_(true);
      const Tensor out = scaled_dot_product_attention(q, k, v, Tensor(), true);
      sum(mul(out.to(DType::f32), w)).backward();
      return OpRun{out.detach().to(DType::f32), q.grad().to(DType::f32), k.grad().to(DType::f32),
                   v.grad().to(DType::f32)};
    };
    const OpRun vendor = through_op(AttentionKernel::vendor), fused = through_op(AttentionKernel::fused);
    expect_close(vendor.out, host(fused.out), kHalf, "op out");
    expect_close_l2(vendor.gq, host(fused.gq), 2e-2, "op grad q");
    expect_close_l2(vendor.gk, host(fused.gk), 2e-2, "op grad k");
    expect_close_l2(vendor.gv, host(fused.gv), 2e-2, "op grad v");

    // self_attention: cuDNN reads the heads inside qkv [B, T, 3 D] and writes
    // the output and qkv's gradient in place (strided, no copies), against
    // the split, head views and loom's flash attention.
    const Tensor qkv0 = dev(randn({2, 200, 3 * 256}, DType::f32, &gen)).to(DType::bf16);
    const Tensor w2 = dev(randn({2, 200, 256}, DType::f32, &gen));
    const auto self_op = [&](AttentionKernel kernel) {
      AttentionKernelGuard guard(kernel);
      Tensor qkv = qkv0.clone().requires_grad_(true);
      const Tensor out = self_attention(qkv, 4, Tensor(), true);
      const std::string node = out.grad_fn()->name();
      sum(mul(out.to(DType::f32), w2)).backward();
      return std::pair{OpRun{out.detach().to(DType::f32), qkv.grad().to(DType::f32), {}, {}}, node};
    };
    const auto [strided, strided_node] = self_op(AttentionKernel::vendor);
    const auto [split, split_node] = self_op(AttentionKernel::fused);
    CHECK_THAT(strided_node == "self_attention", "self_attention under vendor ran ", strided_node,
               ", not cuDNN in place");
    expect_close(strided.out, host(split.out), kHalf, "self_attention out");
    expect_close_l2(strided.gq, host(split.gq), 2e-2, "self_attention grad qkv");
  });
  s.run("adamw step", [] {
    Generator gen(30);
    kernels::AdamWStep st{1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - std::pow(0.9, 3), 1 - std::pow(0.999, 3)};
    for (DType t : {DType::f32, DType::f64}) {
      Tensor p = randn({10001}, t, &gen), g = randn({10001}, t, &gen), m = randn({10001}, t, &gen);
      Tensor v = abs(randn({10001}, t, &gen));
      Tensor pd = dev(p), gd = dev(g), md = dev(m), vd = dev(v);
      // f32 parameters also write their bf16 copy, the cast of the result.
      Tensor half = t == DType::f32 ? full({10001}, 7.0, TensorOptions(DType::bf16).with_device(pd.device())) : Tensor();
      cpu_k().adamw(p, g, m, v, Tensor(), st);
      cuda_k().adamw(pd, gd, md, vd, half, st);
      expect_close(pd, p, tolerance_for(t), "param");
      expect_close(md, m, tolerance_for(t), "exp_avg");
      expect_close(vd, v, tolerance_for(t), "exp_avg_sq");
      if (half.defined()) expect_same(half, host(pd).to(DType::bf16), "the bf16 copy: the updated param's cast");
    }
  });
  return s.finish();
}

// ---------------------------------------------------------------------------
// ops: the shared op table, CUDA vs CPU
// ---------------------------------------------------------------------------
void op_case(const OpCase& c, DType dtype) {
  Generator gen(seed_of(c.name));
  const std::vector<Tensor> host_in = make_inputs(c, dtype, gen);
  std::vector<Tensor> cpu_in, dev_in;
  for (size_t i = 0; i < host_in.size(); ++i) {
    Tensor h = host_in[i].detach();
    Tensor d = with_layout(dev(h.contiguous()), c.inputs[i]);
    CHECK_THAT(d.is_contiguous() == h.is_contiguous(), "input ", i, ": layout not reproduced on the device");
    if (c.inputs[i].differentiable()) {
      h.requires_grad_(true);
      d.requires_grad_(true);
    }
    cpu_in.push_back(h);
    dev_in.push_back(d);
  }
  const Tolerance tol = tolerance_for(dtype);
  Tensor want = c.fn(cpu_in);
  Tensor got = c.fn(dev_in);
  CHECK_THAT(got.device() == kDev, "the output is on ", got.device().str());
  expect_close(got, want, tol, "output");
  Tensor w = randn(want.shape(), dtype, &gen);
  sum(mul(want, w)).backward();
  sum(mul(got, to_device(w, kDev))).backward();
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].differentiable()) continue;
    CHECK_THAT(cpu_in[i].grad().defined() && dev_in[i].grad().defined(), "input ", i, ": gradient missing");
    CHECK_THAT(dev_in[i].grad().device() == kDev, "input ", i, ": gradient on ", dev_in[i].grad().device().str());
    expect_close(dev_in[i].grad(), cpu_in[i].grad(), tol, "grad of input " + std::to_string(i));
  }
}

int run_ops() {
  Suite s{"cuda.ops"};
  for (DType dtype : {DType::f32, DType::f64})
    for (const auto& c : op_cases())
      s.run(c.name + " [" + dtype_name(dtype) + "]", [&] { op_case(c, dtype); });
  return s.finish();
}

// ---------------------------------------------------------------------------
// models: whole training steps on the device against the same steps on the CPU
// ---------------------------------------------------------------------------
// Two copies of a model from one seed: one stays on the CPU, one moves to the
// device with Module::to. Each takes the same batches through forward,
// backward, gradient clipping and AdamW. Loss, every gradient and every
// parameter after the step must agree (fp32 within 1e-4, parameters within
// 2.5 lr; bit for bit under the host emulation, whose kernels are the CPU's).
// bf16: both sides run under AutocastGuard(bf16); the GPU's tensor-core sums
// (and the fused attention's bf16 probabilities) round differently from the
// CPU's widened GEMM, so 2e-2 for the loss and gradient norm, 3e-2 relative
// L2 for each gradient.
Tolerance model_tolerance(bool bf16) {
  if (g_exact) return Tolerance{0, 0, 0};
  return bf16 ? Tolerance{2e-2, 2e-2, 0} : Tolerance{1e-4, 1e-4, 0};
}

using LossFn = std::function<Tensor(nn::Module&, const std::vector<Tensor>&)>;

void training_steps_match(nn::Module& cpu_model, nn::Module& dev_model, const std::vector<std::vector<Tensor>>& batches,
                          const LossFn& loss_of, bool bf16 = false) {
  const Tolerance tol = model_tolerance(bf16);
  const double lr = 1e-3;
  // AdamW's first steps move a parameter by about lr * g / |g|, whatever |g|:
  // a gradient that is zero up to rounding (e.g. the attention key bias) moves
  // by up to lr in a direction the rounding picks, differently on each device.
  // Each step starts from the same parameters on both sides (below), so the
  // parameters after it are compared within 2.5 lr.
  const Tolerance param_tol = tol.rel == 0 ? tol : Tolerance{tol.rel, tol.scale, 2.5 * lr};
  dev_model.to(kDev);
  for (const auto& [name, t] : dev_model.state_dict())
    CHECK_THAT(t.device() == kDev, name, " is on ", t.device().str(), " after Module::to");
  optim::AdamW cpu_opt(optim::decay_groups(cpu_model, 0.1));
  optim::AdamW dev_opt(optim::decay_groups(dev_model, 0.1));
  for (size_t step = 0; step < batches.size(); ++step) {
    const std::string at = "step " + std::to_string(step);
    std::vector<Tensor> dev_batch;
    for (const Tensor& t : batches[step]) dev_batch.push_back(to_device(t, kDev));
    Tensor cpu_loss, dev_loss;
    {
      AutocastGuard precision(DType::bf16, bf16);  // forward only; backward never autocasts
      cpu_loss = loss_of(cpu_model, batches[step]);
      dev_loss = loss_of(dev_model, dev_batch);
    }
    CHECK_THAT(dev_loss.device() == kDev, at, ": the loss is on ", dev_loss.device().str());
    expect_close(dev_loss, cpu_loss, tol, at + " loss");
    cpu_loss.backward();
    dev_loss.backward();
    const double cpu_norm = optim::clip_grad_norm(cpu_model.parameters(), 1.0);
    const double dev_norm = optim::clip_grad_norm(dev_model.parameters(), 1.0);
    CHECK_THAT(std::abs(dev_norm - cpu_norm) <= tol.rel * cpu_norm, at, ": gradient norm ", dev_norm, " vs ", cpu_norm);
    const auto cpu_params = cpu_model.named_parameters(), dev_params = dev_model.named_parameters();
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      const Tensor& g = dev_params[i].second.grad();
      if (!cpu_params[i].second.grad().defined()) {  // unused by this loss
        CHECK_THAT(!g.defined(), at, ": ", cpu_params[i].first, " has a gradient only on the device");
        continue;
      }
      CHECK_THAT(g.defined() && g.device() == kDev, at, ": ", cpu_params[i].first, " has no gradient on the device");
      if (bf16 && tol.rel > 0)
        expect_close_l2(g, cpu_params[i].second.grad(), 3e-2, at + " grad of " + cpu_params[i].first);
      else
        expect_close(g, cpu_params[i].second.grad(), tol, at + " grad of " + cpu_params[i].first);
    }
    cpu_opt.step(lr);
    dev_opt.step(lr);
    cpu_opt.zero_grad();
    dev_opt.zero_grad();
    for (size_t i = 0; i < cpu_params.size(); ++i)
      expect_close(dev_params[i].second, cpu_params[i].second, param_tol, at + " " + cpu_params[i].first);
    // The next step starts from the CPU's parameters on both sides (the
    // optimizer states stay each device's own): its gradients are compared
    // from the same point. Left to drift by the 2.5 lr allowed above, later
    // steps' gradients differed by more than rounding on one host compiler.
    NoGradGuard no_grad;
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      Tensor param = dev_params[i].second;  // a handle on the module's parameter
      param.copy_(cpu_params[i].second);
    }
  }
}

// Three AdamW steps of a 2-layer GPT on random tokens, device against CPU.
void gpt_steps_match(double dropout, bool bf16, uint64_t seed) {
  models::GPTConfig c;
  // head dim 32: whole 16-wide tiles, so a device with fused attention uses it
  c.vocab_size = 97, c.d_model = 64, c.n_layers = 2, c.n_heads = 2, c.seq_len = 16, c.dropout = dropout;
  Generator g1(seed), g2(seed), data(seed + 1);
  models::GPT cpu_model(c, &g1), dev_model(c, &g2);
  std::vector<std::vector<Tensor>> batches;
  for (int i = 0; i < 3; ++i)
    batches.push_back({randint(0, c.vocab_size, {4, c.seq_len}, DType::i64, &data),
                       randint(0, c.vocab_size, {4, c.seq_len}, DType::i64, &data)});
  const auto loss = [](nn::Module& m, const std::vector<Tensor>& b) {
    Tensor logits = dynamic_cast<models::GPT&>(m).forward(b[0]);
    return cross_entropy(logits.reshape({-1, logits.size(-1)}), b[1].reshape({-1}));
  };
  training_steps_match(cpu_model, dev_model, batches, loss, bf16);
}

int run_models() {
  Suite s{"cuda.models"};
  s.run("GPT: 2 layers, dropout 0.1, 3 AdamW steps", [] { gpt_steps_match(0.1, false, 5); });
  s.run("GPT in bf16 autocast: 2 layers, 3 AdamW steps", [] { gpt_steps_match(0.0, true, 11); });
  for (const std::string arch : {"vit", "cnn"}) {
    s.run("image classifier (" + arch + "): 2 AdamW steps", [arch] {
      models::ImageClassifierConfig c;
      c.arch = arch, c.image_size = 16, c.patch = 4, c.d_model = 32, c.n_layers = 2, c.width = 8, c.hidden = 32,
      c.dropout = 0.1;
      Generator g1(7), g2(7), data(8);
      models::ImageClassifier cpu_model(c, &g1), dev_model(c, &g2);
      std::vector<std::vector<Tensor>> batches;
      for (int i = 0; i < 2; ++i)
        batches.push_back({randn({6, 1, 16, 16}, DType::f32, &data), randint(0, 10, {6}, DType::i64, &data)});
      training_steps_match(cpu_model, dev_model, batches, [](nn::Module& m, const std::vector<Tensor>& b) {
        return cross_entropy(dynamic_cast<models::ImageClassifier&>(m).forward(b[0]), b[1]);
      });
    });
  }
  s.run("omni model: grouped encoders, fusion, decoder; 2 AdamW steps", [] {
    omni::OmniConfig c;
    c.vocab_size = 60, c.d_model = 16, c.n_heads = 2, c.embed_dim = 16, c.text_layers = 1, c.image_layers = 1,
    c.audio_layers = 1, c.video_layers = 1, c.fusion_layers = 1, c.decoder_layers = 1, c.text_len = 10,
    c.image_stem = "conv", c.mel_frames = 32, c.n_mels = 16, c.video_frames = 2, c.dropout = 0.1;
    Generator g1(9), g2(9), data(10);
    omni::OmniModel cpu_model(c, &g1), dev_model(c, &g2);
    const int64_t b = 4;
    std::vector<std::vector<Tensor>> batches;
    for (int i = 0; i < 2; ++i) {
      Tensor ids = randint(1, c.vocab_size, {b, c.text_len}, DType::i64, &data);
      Tensor valid = lt(arange(c.mel_frames, DType::i64).unsqueeze(0),
                        from_vector(std::vector<int64_t>{32, 20, 9, 32}, {b, 1}));  // padded speech
      batches.push_back({rand({b, 3, 64, 64}, DType::f32, &data), ids, randn({b, c.mel_frames, c.n_mels}, DType::f32, &data),
                         valid, rand({b, c.video_frames, 3, 64, 64}, DType::f32, &data),
                         randint(0, c.vocab_size, {b, c.text_len}, DType::i64, &data)});
    }
    training_steps_match(cpu_model, dev_model, batches, [](nn::Module& module, const std::vector<Tensor>& x) {
      auto& m = dynamic_cast<omni::OmniModel&>(module);
      const omni::Encoded img = m.image->encode(x[0]), txt = m.text->encode(x[1]);
      const omni::Encoded aud = m.audio->encode(x[2], x[3]), vid = m.video->encode(x[4]);
      Tensor loss = omni::info_nce(m.embed(omni::Modality::image, img), m.embed(omni::Modality::text, txt),
                                   m.logit_scale);
      loss = add(loss, omni::info_nce(m.embed(omni::Modality::audio, aud), m.embed(omni::Modality::video, vid),
                                      m.logit_scale));
      const Tensor fused = m.fusion->forward({txt, img, aud}).pooled;
      loss = add(loss, cross_entropy(m.match_head->forward(fused), zeros({fused.size(0)}, TensorOptions(DType::i64).with_device(fused.device()))));
      const Tensor logits = m.decoder->forward(x[1], omni::concat({img, aud}));
      return add(loss, cross_entropy(logits.reshape({-1, logits.size(-1)}), x[5].reshape({-1})));
    });
  });
  return s.finish();
}

// ---------------------------------------------------------------------------
// bench: a few timings (one JSON object per line)
// ---------------------------------------------------------------------------
// The median time of one call, in ms, over `reps` timed batches after a
// warm-up call. A batch is as many calls back to back as fill about half a
// millisecond (at most 64), then one wait for the device: timing each call
// with a wait of its own adds the launch and the wait (several microseconds)
// to a kernel of ten or twenty, where a training step's calls follow each
// other without waiting.
double median_ms(const std::function<void()>& fn, int reps = 20) {
  const auto elapsed_ms = [](auto t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  fn();
  cuda::synchronize(0);
  auto t0 = std::chrono::steady_clock::now();
  fn();
  cuda::synchronize(0);
  const int batch = static_cast<int>(std::clamp(std::ceil(0.5 / std::max(elapsed_ms(t0), 1e-3)), 1.0, 64.0));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    t0 = std::chrono::steady_clock::now();
    for (int b = 0; b < batch; ++b) fn();
    cuda::synchronize(0);
    t.push_back(elapsed_ms(t0) / batch);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const std::string& name, const std::string& shape, double ms, double bytes, double flops) {
  std::printf("{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"cuda:0\", \"median_ms\": %.4f", name.c_str(),
              shape.c_str(), ms);
  if (bytes > 0) std::printf(", \"gbps\": %.1f", bytes / ms / 1e6);
  if (flops > 0) std::printf(", \"tflops\": %.2f", flops / ms / 1e9);
  std::printf("}\n");
  std::fflush(stdout);
}

// Flash attention (bf16) forward, and forward + backward, against the same
// attention composed from matmul and softmax and against cuDNN's fused
// attention, and as a fraction of the measured bf16 GEMM rate: at sequence
// 4096 (2 x 16 heads of 64 and 128, the targets' shapes; and of 32), and at
// GPT-2 124M's training shape (8 x 12 heads of 64, sequence 1024), where the
// automatic choice decides between cuDNN's kernel and loom's. FLOPs count
// the useful work (forward 4·L²·D per head, backward 2.5x that; halved when
// causal).
void bench_attention(double gemm_tflops) {
  struct Shape {
    int64_t b, h, l, d;
  };
  const bool has_vendor = cuda_k().vendor_attention != nullptr;
  if (!has_vendor) std::printf("attention_cudnn: not in this build (no cuDNN frontend headers)\n");
  Generator gen(3);
  for (const auto [b, h, l, d] :
       {Shape{2, 16, 4096, 64}, Shape{2, 16, 4096, 128}, Shape{2, 16, 4096, 32}, Shape{8, 12, 1024, 64}}) {
    for (const bool causal : {false, true}) {
      const auto opts = TensorOptions(DType::f32).with_device(kDev);
      Tensor q = randn({b, h, l, d}, opts, &gen).to(DType::bf16), k = randn({b, h, l, d}, opts, &gen).to(DType::bf16),
             v = randn({b, h, l, d}, opts, &gen).to(DType::bf16);
      const double fwd = 4.0 * b * h * l * l * d * (causal ? 0.5 : 1.0);
      const std::string shape = "[" + std::to_string(b) + ", " + std::to_string(h) + ", " + std::to_string(l) + ", " +
                                std::to_string(d) + "] bf16" + (causal ? " causal" : "");
      const auto line = [&](const char* name, double ms, double flops) {
        report(name, shape, ms, 0, flops);
        std::printf("{\"name\": \"%s_vs_gemm\", \"shape\": \"%s\", \"fraction_of_gemm\": %.3f}\n", name,
                    shape.c_str(), flops / ms / 1e9 / gemm_tflops);
        return ms;
      };
      // cuDNN's fused attention on the same call, and loom's speed-up over it
      // (> 1: flash attention is faster). A shape cuDNN declines is reported,
      // not fatal: the other timings still run.
      const auto against_cudnn = [&](const char* name, const std::function<void()>& call, double flops,
                                     double fused_ms) {
        if (!has_vendor) return;
        try {
          AttentionKernelGuard vendor(AttentionKernel::vendor);
          const double ms = line(name, median_ms(call, 10), flops);
          std::printf("{\"name\": \"%s_fused_speedup\", \"shape\": \"%s\", \"speedup\": %.3f}\n", name,
                      shape.c_str(), ms / fused_ms);
        } catch (const Error&) {  // cuDNN's reason is on stderr (the attention file prints it once per shape)
          std::printf("{\"name\": \"%s\", \"shape\": \"%s\", \"error\": \"cuDNN declined\"}\n", name,
                      shape.c_str());
        }
      };
      {
        NoGradGuard no_grad;
        // loom's own flash attention (automatic would take cuDNN's first).
        const auto forward = [&] { scaled_dot_product_attention(q, k, v, Tensor(), causal); };
        const double fused_ms = [&] {
          AttentionKernelGuard own(AttentionKernel::fused);
          return line("attention_fused_fwd", median_ms(forward, 10), fwd);
        }();
        // The composition the fused kernel replaces: a [L, L] score matrix per head.
        const double scale = 1.0 / std::sqrt(static_cast<double>(d));
        Tensor keep;
        if (causal) keep = le(arange(l, TensorOptions(DType::i64).with_device(kDev)).reshape({1, l}),
                              arange(l, TensorOptions(DType::i64).with_device(kDev)).reshape({l, 1}));
        line("attention_composed_fwd", median_ms([&] {
               Tensor sc = mul(matmul(q, k.transpose(-1, -2)), scale);
               if (causal) sc = masked_fill(sc, logical_not(keep), -INFINITY);
               matmul(softmax(sc, -1).to(DType::bf16), v);
             }, 10),
             fwd);
        against_cudnn("attention_cudnn_fwd", forward, fwd, fused_ms);
      }
      q.requires_grad_(true);
      k.requires_grad_(true);
      v.requires_grad_(true);
      Tensor g = randn({b, h, l, d}, opts, &gen).to(DType::bf16);
      GradModeGuard with_grad(true);  // run_bench times under NoGradGuard
      const auto forward_backward = [&] { scaled_dot_product_attention(q, k, v, Tensor(), causal).backward(g); };
      const double fused_ms = [&] {
        AttentionKernelGuard own(AttentionKernel::fused);
        return line("attention_fused_fwd_bwd", median_ms(forward_backward, 10), 3.5 * fwd);
      }();
      against_cudnn("attention_cudnn_fwd_bwd", forward_backward, 3.5 * fwd, fused_ms);
    }
  }
  // fp32 at GPT-2 124M's shape: cuDNN has no fp32 attention, so an fp32
  // step runs loom's kernel (shared-memory tiles on FMAs) or the composition
  // (cuBLAS products, the softmax kernel, an [L, L] score matrix per head);
  // these two lines say which the automatic choice should take there.
  {
    const int64_t b = 8, h = 12, l = 1024, d = 64;
    const auto opts = TensorOptions(DType::f32).with_device(kDev);
    Tensor q = randn({b, h, l, d}, opts, &gen), k = randn({b, h, l, d}, opts, &gen), v = randn({b, h, l, d}, opts, &gen);
    Tensor g = randn({b, h, l, d}, opts, &gen);
    for (Tensor* t : {&q, &k, &v}) t->requires_grad_(true);
    const double flops = 3.5 * 4.0 * b * h * l * l * d * 0.5;
    GradModeGuard with_grad(true);
    const auto step = [&] { scaled_dot_product_attention(q, k, v, Tensor(), true).backward(g); };
    for (const auto& [name, kernel] : {std::pair{"attention_fused_fwd_bwd", AttentionKernel::fused},
                                       std::pair{"attention_composed_fwd_bwd", AttentionKernel::composed}}) {
      AttentionKernelGuard use(kernel);
      report(name, "[8, 12, 1024, 64] f32 causal", median_ms(step, 10), 0, flops);
    }
  }
}

// The bf16 GEMM rate training steps and attention are measured against
// (8192^3, reported as a timing of its own), measured once a run.
double bench_gemm_bf16(const TensorOptions& opts, Generator& gen) {
  static double tflops = 0;
  if (tflops > 0) return tflops;
  const int64_t m = 8192;
  Tensor p = randn({m, m}, opts, &gen).to(DType::bf16), q = randn({m, m}, opts, &gen).to(DType::bf16);
  const double ms = median_ms([&] { matmul(p, q); }, 10), flops = 2.0 * m * m * m;
  report("matmul", std::to_string(m) + "^3 bf16", ms, 0, flops);
  tflops = flops / ms / 1e9;
  return tflops;
}

// The timed sections of `bench`, each on tensors of its own: `loom_cuda_tests
// bench [SECTION...]` runs the named ones, in this order (every one without
// names), so that a build of another kernel version can time only what it
// changes.
struct BenchSection {
  const char* name;
  void (*run)(const TensorOptions& opts, Generator& gen);
};

const BenchSection kBenchSections[] = {
    {"pointwise",
     [](const TensorOptions& opts, Generator& gen) {
       const int64_t n = int64_t{64} << 20;
       Tensor a = randn({n}, opts, &gen), b = randn({n}, opts, &gen), c = empty({n}, opts);
       report("copy", "[64M] f32", median_ms([&] { c.copy_(a); }), 8.0 * n, 0);
       report("add", "[64M] f32", median_ms([&] { add(a, b); }), 12.0 * n, 0);
       report("sum", "[64M] f32", median_ms([&] { sum(a); }), 4.0 * n, 0);
       // The packed pointwise path (16 bytes per access).
       Tensor ah = a.to(DType::bf16), bh = b.to(DType::bf16);
       report("add", "[64M] bf16", median_ms([&] { add(ah, bh); }), 6.0 * n, 0);
       report("mul_scalar", "[64M] f32", median_ms([&] { mul(a, 0.5); }), 8.0 * n, 0);
       report("gelu_tanh", "[64M] f32", median_ms([&] { gelu(a, GeluApprox::tanh); }), 8.0 * n, 0);
       // host to device through the pinned staging blocks (the caller does not wait; the median includes the sync)
       Tensor host = randn({n}, DType::f32, &gen);
       report("upload", "[64M] f32 host->cuda:0", median_ms([&] { c.copy_(host); }), 4.0 * n, 0);
     }},
    {"rows",
     [](const TensorOptions& opts, Generator& gen) {
       Tensor x = randn({8192, 4096}, opts, &gen);
       report("softmax", "[8192, 4096] f32", median_ms([&] { softmax(x, -1); }), 8.0 * x.numel(), 0);
       Tensor lw = randn({4096}, opts, &gen), lb = randn({4096}, opts, &gen);
       report("layer_norm", "[8192, 4096] f32", median_ms([&] { layer_norm(x, {4096}, lw, lb); }), 8.0 * x.numel(), 0);
       // The residual add fused with the norm against the two ops (both
       // counted at the fused bytes: x, r read, sum, normed written).
       Tensor r = randn({8192, 4096}, opts, &gen);
       report("residual_layer_norm", "[8192, 4096] f32",
              median_ms([&] { residual_layer_norm(x, r, {4096}, lw, lb); }), 16.0 * x.numel(), 0);
       report("add+layer_norm", "[8192, 4096] f32", median_ms([&] { layer_norm(add(x, r), {4096}, lw, lb); }),
              16.0 * x.numel(), 0);
     }},
    {"norms768",
     [](const TensorOptions& opts, Generator& gen) {
       // GPT-2's width (the warp-per-row kernels): the fused norm forward, and
       // its backward at the backend entry (reads grad, grad_sum and h, writes
       // grad_h; the weight and bias sums ride along)
       Tensor h = randn({8192, 768}, opts, &gen), hr = randn({8192, 768}, opts, &gen);
       Tensor w = randn({768}, opts, &gen), bias = randn({768}, opts, &gen);
       const double values = static_cast<double>(h.numel());
       report("residual_layer_norm", "[8192, 768] f32", median_ms([&] { residual_layer_norm(h, hr, {768}, w, bias); }),
              16.0 * values, 0);
       kernels::NormShape s;
       s.rows = 8192;
       s.cols = 768;
       Tensor mean = empty({8192}, opts), rstd = empty({8192}, opts), out = empty_like(h);
       cuda_k().norm(h, Tensor(), w, bias, out, Tensor(), mean, rstd, s);
       Tensor grad_h = empty_like(h), grad_w = empty_like(w), grad_b = empty_like(bias);
       report("residual_layer_norm_backward", "[8192, 768] f32", median_ms([&] {
                cuda_k().norm_backward(out, hr, h, w, mean, rstd, grad_h, Tensor(), grad_w, grad_b, s);
              }),
              16.0 * values, 0);
       report("residual_layer_norm_backward_x", "[8192, 768] f32 (grad_h only)", median_ms([&] {
                cuda_k().norm_backward(out, hr, h, w, mean, rstd, grad_h, Tensor(), Tensor(), Tensor(), s);
              }),
              16.0 * values, 0);
       // Autocast's: the branch and the output in bf16, the gradients read and written in bf16 as well
       Tensor h16 = h.to(DType::bf16), out16 = out.to(DType::bf16), sum = empty_like(h), grad_h16 = empty_like(out16);
       report("residual_layer_norm", "[8192, 768] bf16 branch and output",
              median_ms([&] { cuda_k().norm(h16, hr, w, bias, out16, sum, mean, rstd, s); }), 12.0 * values, 0);
       report("residual_layer_norm_backward", "[8192, 768] bf16 output grad, f32 + bf16 grad_h", median_ms([&] {
                cuda_k().norm_backward(out16, hr, sum, w, mean, rstd, grad_h, grad_h16, grad_w, grad_b, s);
              }),
              16.0 * values, 0);
     }},
    {"copies",
     [](const TensorOptions& opts, Generator& gen) {
       // the copies a transformer step makes: heads split out of [B, T, H, Dh] (bf16), transposes, and
       // autocast's casts
       Tensor heads = randn({8, 1024, 12, 64}, opts, &gen).to(DType::bf16);
       report("permute_copy", "[8, 1024, 12, 64] -> [8, 12, 1024, 64] bf16",
              median_ms([&] { heads.transpose(1, 2).contiguous(); }), 4.0 * heads.numel(), 0);
       // transposes: a ViT stem's conv2d output into tokens (bf16), and a square f32 matrix
       Tensor stem = randn({64, 768, 196}, opts, &gen).to(DType::bf16);
       report("transpose_copy", "[64, 768, 196] -> [64, 196, 768] bf16",
              median_ms([&] { stem.transpose(1, 2).contiguous(); }), 4.0 * stem.numel(), 0);
       Tensor square = randn({4096, 4096}, opts, &gen);
       report("transpose_copy", "[4096, 4096]^T f32", median_ms([&] { square.t().contiguous(); }),
              8.0 * square.numel(), 0);
       Tensor acts = randn({8192, 768}, opts, &gen);
       report("cast", "[8192, 768] f32 -> bf16", median_ms([&] { acts.to(DType::bf16); }), 6.0 * acts.numel(), 0);
       Tensor logits16 = randn({8192, 50304}, opts, &gen).to(DType::bf16);
       report("cast", "[8192, 50304] bf16 -> f32", median_ms([&] { logits16.to(DType::f32); }),
              6.0 * logits16.numel(), 0);
     }},
    {"matmul",
     [](const TensorOptions& opts, Generator& gen) {
       for (int64_t m : {1024, 4096}) {
         Tensor p = randn({m, m}, opts, &gen), q = randn({m, m}, opts, &gen);
         report("matmul", std::to_string(m) + "^3 f32", median_ms([&] { matmul(p, q); }, 10), 0, 2.0 * m * m * m);
       }
       bench_gemm_bf16(opts, gen);
     }},
    {"attention",
     [](const TensorOptions& opts, Generator& gen) { bench_attention(bench_gemm_bf16(opts, gen)); }},
    {"linear_gelu",
     [](const TensorOptions& opts, Generator& gen) {
       // GPT-2 124M's MLP input layer over 8 x 1024 tokens, bf16: cuBLASLt's GELU epilogue against matmul + add + gelu
       const int64_t m = 8192, k = 768, nn = 3072;
       Tensor xs = randn({m, k}, opts, &gen).to(DType::bf16), ws = randn({nn, k}, opts, &gen).to(DType::bf16);
       Tensor bs = randn({nn}, opts, &gen).to(DType::bf16);
       const double flops = 2.0 * m * k * nn;
       report("linear_gelu", "[8192, 768] x [3072, 768]^T bf16", median_ms([&] { linear_gelu(xs, ws, bs); }), 0, flops);
       report("matmul+add+gelu", "[8192, 768] x [3072, 768]^T bf16",
              median_ms([&] { gelu(add(matmul(xs, ws.t()), bs), GeluApprox::tanh); }), 0, flops);
     }},
    {"conv",
     [](const TensorOptions& opts, Generator& gen) {
       // a ViT patch stem (224 px, 16 x 16 patches, 768 channels, batch 64), bf16: cuDNN against im2col + GEMM
       Tensor img = randn({64, 3, 224, 224}, opts, &gen).to(DType::bf16);
       Tensor w = randn({768, 3, 16, 16}, opts, &gen).to(DType::bf16), cb = randn({768}, opts, &gen).to(DType::bf16);
       const double flops = 2.0 * 64 * 768 * 14 * 14 * (3 * 16 * 16);
       report("conv2d", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { conv2d(img, w, cb, {16, 16}, {0, 0}); }), 0, flops);
       const auto composed = [&] {
         Tensor cols = unfold2d(img, {16, 16}, {16, 16}, {0, 0});
         return add(matmul(w.reshape({768, -1}), cols).reshape({64, 768, 14, 14}), cb.reshape({1, 768, 1, 1}));
       };
       report("conv2d_composed", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16", median_ms(composed), 0, flops);
       // As tokens [64, 196, 768] (what a ViT consumes): conv2d transposed into tokens, against
       // patchify and one GEMM with the bias in its epilogue (what nn::PatchEmbed calls).
       const auto conv_tokens = [&] {
         return conv2d(img, w, cb, {16, 16}, {0, 0}).flatten(2).transpose(1, 2).contiguous();
       };
       report("conv2d_tokens", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16", median_ms(conv_tokens), 0, flops);
       report("patch_embed", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { patch_embed(img, w, cb); }), 0, flops);
       // With the backward: the weight and bias gradients (an image needs none),
       // which decides whether the entry should decline patch stems for training.
       w.requires_grad_(true);
       cb.requires_grad_(true);
       Tensor g = randn({64, 768, 14, 14}, opts, &gen).to(DType::bf16);
       GradModeGuard with_grad(true);  // run_bench times under NoGradGuard
       report("conv2d_fwd_bwd", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { conv2d(img, w, cb, {16, 16}, {0, 0}).backward(g); }), 0, 2.0 * flops);
       report("conv2d_composed_fwd_bwd", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { composed().backward(g); }), 0, 2.0 * flops);
       Tensor g_tokens = g.flatten(2).transpose(1, 2).contiguous();
       report("conv2d_tokens_fwd_bwd", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { conv_tokens().backward(g_tokens); }), 0, 2.0 * flops);
       report("patch_embed_fwd_bwd", "patch stem [64, 3, 224, 224] 16x16/16 -> 768 bf16",
              median_ms([&] { patch_embed(img, w, cb).backward(g_tokens); }), 0, 2.0 * flops);
     }},
    {"log_mel",
     [](const TensorOptions& opts, Generator& gen) {
       // log-mel of 64 ten-second clips at 16 kHz on the device (cuFFT spectra, mel GEMM)
       Tensor clips = randn({64, 160000}, opts, &gen);
       report("log_mel", "64 x 10 s, 16 kHz -> [64, 999, 80]", median_ms([&] { audio::log_mel_spectrogram(clips); }),
              4.0 * clips.numel(), 0);
     }},
    {"cross_entropy",
     [](const TensorOptions& opts, Generator& gen) {
       Tensor logits = randn({4096, 32000}, opts, &gen);
       Tensor targets = to_device(randint(0, 32000, {4096}, DType::i64, &gen), kDev);
       report("cross_entropy", "[4096, 32000] f32", median_ms([&] { cross_entropy(logits, targets); }),
              4.0 * logits.numel(), 0);
     }},
};

// False, saying which, when a name is not a section.
bool bench_sections_known(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const bool known = std::any_of(std::begin(kBenchSections), std::end(kBenchSections),
                                   [&](const BenchSection& s) { return name == s.name; });
    if (!known) {
      std::string all;
      for (const BenchSection& s : kBenchSections) all += std::string(all.empty() ? "" : ", ") + s.name;
      std::fprintf(stderr, "bench: no section '%s' (sections: %s)\n", name.c_str(), all.c_str());
      return false;
    }
  }
  return true;
}

// The kernel variants (src/kernels/variants.hpp), one a line for
// scripts/gpu-check.sh: name, suites, bench sections, summary, tab-separated.
// A variant naming a suite or a section this binary lacks fails (exit 2).
int list_variants() {
  const std::vector<std::string> suites = {"runtime", "kernels", "ops", "models"};
  const auto words = [](const std::string& text) {
    std::istringstream in(text);
    return std::vector<std::string>(std::istream_iterator<std::string>(in), std::istream_iterator<std::string>());
  };
  int status = 0;
  for (const kernels::KernelVariant& v : kernels::kernel_variants()) {
    for (const std::string& suite : words(v.checks)) {
      if (std::find(suites.begin(), suites.end(), suite) == suites.end()) {
        std::fprintf(stderr, "variants: %s names the suite '%s' (suites: runtime, kernels, ops, models)\n", v.name,
                     suite.c_str());
        status = 2;
      }
    }
    const std::vector<std::string> sections = words(v.sections);
    if (sections.empty() || !bench_sections_known(sections)) {
      std::fprintf(stderr, "variants: %s needs bench sections this binary has\n", v.name);
      status = 2;
    }
    std::printf("%s\t%s\t%s\t%s\n", v.name, v.checks, v.sections, v.summary);
  }
  return status;
}

// The sections named (every one when none is), then the allocator's counts.
int run_bench(const std::vector<std::string>& names) {
  NoGradGuard guard;
  const auto opts = TensorOptions(DType::f32).with_device(kDev);
  Generator gen(1);
  for (const BenchSection& s : kBenchSections)
    if (names.empty() || std::find(names.begin(), names.end(), s.name) != names.end()) s.run(opts, gen);
  const auto st = cuda::memory_stats(0);
  std::printf("{\"name\": \"allocator\", \"device_mallocs\": %llu, \"allocations\": %llu, \"cache_hits\": %llu, "
              "\"peak_allocated_mib\": %.1f, \"reserved_mib\": %.1f}\n",
              static_cast<unsigned long long>(st.device_mallocs), static_cast<unsigned long long>(st.allocations),
              static_cast<unsigned long long>(st.cache_hits), st.peak_allocated_bytes / 1048576.0,
              st.reserved_bytes / 1048576.0);
  return 0;
}

}  // namespace
}  // namespace loom::testing

int main(int argc, char** argv) {
  using namespace loom;
  const std::string suite = argc > 1 ? argv[1] : "";
  const auto usage_error = [&suite](const char* program, const char* flag, const char* suites) {
    std::fprintf(stderr, "%s: %s runs the %s suites, not %s\n", program, flag, suites, suite.c_str());
    return 2;
  };
  if (suite == "variants") return testing::list_variants();
  if (suite != "runtime" && suite != "kernels" && suite != "ops" && suite != "models" && suite != "bench") {
    std::fprintf(stderr,
                 "usage: %s runtime|kernels|ops|models [--host-emulation|--host-emulation-tiles]\n"
                 "       %s bench [SECTION...]\n"
                 "       %s variants   (the kernel variants: NAME, suites, bench sections, summary; tab-separated)\n",
                 argv[0], argv[0], argv[0]);
    return 2;
  }
  const bool emulation_flag =
      argc > 2 && (std::string(argv[2]) == "--host-emulation" || std::string(argv[2]) == "--host-emulation-tiles");
  std::vector<std::string> bench_sections;  // (an emulation flag is answered below)
  if (suite == "bench" && !emulation_flag) bench_sections.assign(argv + 2, argv + argc);
  if (!testing::bench_sections_known(bench_sections)) return 2;
  if (argc > 2 && std::string(argv[2]) == "--host-emulation-tiles") {
    // As below, plus the CUDA backend's own tile kernels (flash attention)
    // on the SIMT emulator: ops take their fused paths as on a GPU, and the
    // values match the CPU within the GPU tolerances.
    if (suite != "ops" && suite != "models") return usage_error(argv[0], "--host-emulation-tiles", "ops and models");
    cuda::HostEmulation emulation(1, cuda::EmulatedKernels::cpu_and_tiles);
    std::printf("%s on %s with the tile kernels on the SIMT emulator\n", suite.c_str(),
                cuda::device_name(0).c_str());
    return suite == "ops" ? testing::run_ops() : testing::run_models();
  }
  if (argc > 2 && std::string(argv[2]) == "--host-emulation") {
    // cuda:0 is host memory running the CPU kernels (cuda::HostEmulation): a
    // test of device placement (no op, module or optimizer may leave a tensor
    // on the CPU), not of the CUDA kernels.
    if (suite == "runtime" || suite == "bench")
      return usage_error(argv[0], "--host-emulation", "kernels, ops and models");
    cuda::HostEmulation emulation;
    std::printf("%s on %s: device placement, not the CUDA kernels\n", suite.c_str(), cuda::device_name(0).c_str());
    if (suite == "kernels") return testing::run_kernels();
    testing::g_exact = true;
    return suite == "ops" ? testing::run_ops() : testing::run_models();
  }
  if (!cuda_available()) {
    std::printf("skipped: no GPU (%s)\n", cuda_unavailable_reason().c_str());
    return testing::kSkip;
  }
  std::printf("%s on %s\n", suite.c_str(), cuda::device_name(0).c_str());
  if (suite == "bench") return testing::run_bench(bench_sections);
  cuda::set_poison_allocations(true);
  if (suite == "runtime") return testing::run_runtime();
  if (suite == "kernels") return testing::run_kernels();
  if (suite == "models") return testing::run_models();
  return testing::run_ops();
}
