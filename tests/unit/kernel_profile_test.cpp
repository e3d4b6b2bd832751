// The kernel profile: every kernel-table call counted once, under its entry,
// operation, context (forward, which node's backward, gradient accumulation)
// and device; results unchanged; clear errors when misused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include <loom/core/cuda.hpp>
#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {

const KernelTime* find_row(const std::vector<KernelTime>& rows, const std::string& kernel, const std::string& context,
                           const std::string& device = "cpu") {
  for (const KernelTime& r : rows)
    if (r.kernel == kernel && r.context == context && r.device == device) return &r;
  return nullptr;
}

int64_t calls_of(const std::vector<KernelTime>& rows, const std::string& kernel, const std::string& context,
                 const std::string& device = "cpu") {
  const KernelTime* r = find_row(rows, kernel, context, device);
  return r == nullptr ? 0 : r->calls;
}

// loss = sum(gelu(x) * x): x is used twice, so its gradients are summed.
Tensor gelu_times_x(const Tensor& x) { return sum(mul(gelu(x), x)); }

}  // namespace

TEST_CASE("the kernel profile counts each call by kernel, context and device", "[profile]") {
  Generator g(7);
  const Tensor x0 = randn({64, 32}, DType::f32, &g);

  Tensor x_plain = x0.clone().requires_grad_(true);
  const Tensor loss_plain = gelu_times_x(x_plain);
  loss_plain.backward();

  Tensor x = x0.clone().requires_grad_(true);
  const auto start = std::chrono::steady_clock::now();
  start_kernel_profile();
  CHECK(kernel_profile_running());
  const Tensor loss = gelu_times_x(x);
  loss.backward();
  const std::vector<KernelTime> rows = stop_kernel_profile();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK_FALSE(kernel_profile_running());

  // Profiling changes no bit.
  CHECK(allclose(loss, loss_plain, 0, 0));
  CHECK(allclose(x.grad(), x_plain.grad(), 0, 0));

  // Forward: one gelu, one product, one sum.
  CHECK(calls_of(rows, "unary.gelu", "") == 1);
  CHECK(calls_of(rows, "binary.mul", "") == 1);
  CHECK(calls_of(rows, "reduce.sum", "") == 1);
  // Backward: gelu's derivative inside gelu's node, the two products inside
  // mul's, and x's two gradients summed by the engine (gradient sum).
  CHECK(calls_of(rows, "unary_backward.gelu", "backward of gelu") == 1);
  CHECK(calls_of(rows, "binary.mul", "backward of mul") == 2);
  CHECK(calls_of(rows, "binary.add", "gradient sum") == 1);
  CHECK(calls_of(rows, "unary_backward.gelu", "") == 0);

  double total = 0;
  for (const KernelTime& r : rows) {
    INFO(r.kernel << " / " << r.context);
    CHECK(r.calls > 0);
    CHECK(r.seconds >= 0);
    CHECK(r.device == "cpu");
    total += r.seconds;
  }
  CHECK(total <= wall);
  CHECK(std::is_sorted(rows.begin(), rows.end(),
                       [](const KernelTime& a, const KernelTime& b) { return a.seconds > b.seconds; }));
}

TEST_CASE("the kernel profile sums calls from several threads and devices", "[profile]") {
  cuda::HostEmulation emulation(1);
  const Tensor host = ones({256});
  const Tensor device = host.to(cuda_device(0));
  start_kernel_profile();
  auto work = [](const Tensor& t) {
    for (int i = 0; i < 50; ++i) (void)exp(t);
  };
  std::thread a(work, host), b(work, host), c(work, device);
  a.join();
  b.join();
  c.join();
  const std::vector<KernelTime> rows = stop_kernel_profile();
  CHECK(calls_of(rows, "unary.exp", "", "cpu") == 100);
  CHECK(calls_of(rows, "unary.exp", "", "cuda:0") == 50);
}

TEST_CASE("the kernel profile's table and its errors", "[profile]") {
  CHECK_THROWS_WITH(stop_kernel_profile(), Contains("no kernel profile is running"));
  start_kernel_profile();
  CHECK_THROWS_WITH(start_kernel_profile(), Contains("already running"));
  (void)stop_kernel_profile();

  const std::vector<KernelTime> rows = {{"gemm", "backward of linear", "cpu", 4, 0.006},
                                        {"copy", "", "cpu", 10, 0.003},
                                        {"binary.add", "gradient sum", "cpu", 2, 0.001}};
  const std::string table = format_kernel_profile(rows, 0.02, 2);
  INFO(table);
  CHECK_THAT(table, Contains("kernel") && Contains("context") && Contains("us/call"));
  CHECK_THAT(table, Contains("backward of linear") && Contains("1500.0") && Contains("60.0%") && Contains("30.0%"));
  CHECK_THAT(table, Contains("(1 more)") && Contains("all kernels"));
  CHECK(table.find("gradient sum") == std::string::npos);  // beyond the 2 rows asked for
  CHECK(std::count(table.begin(), table.end(), '\n') == 5);          // header, 2 rows, the rest, the total
  const std::string total = table.substr(table.find("all kernels"));
  CHECK_THAT(total, Contains(" 16 ") && Contains(" 10.00 ") && Contains("100.0%") && Contains("50.0%"));
}
