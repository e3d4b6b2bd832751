// The NCCL process group (label cuda): every collective on CUDA tensors,
// checked exactly with small integers copied back to the CPU, async waits out
// of order, split, and error messages. One GPU per rank (rank r uses cuda:r).
// Prints "skipped: ..." and exits 77 (ctest: Skipped) when the build has no
// NCCL, there is no GPU, or fewer GPUs than ranks.
#include <cstdio>

#include <loom/core/cuda.hpp>
#include <loom/dist/nccl_process_group.hpp>
#include <loom/loom.hpp>

#include "dist_check.hpp"

using namespace loom;

namespace {

constexpr int kSkip = 77;

Tensor on_gpu(const std::vector<double>& values, DType dtype, int device) {
  return to_device(from_vector(values, {static_cast<int64_t>(values.size())}).to(dtype), cuda_device(device));
}

std::vector<double> on_cpu(const Tensor& t) { return to_device(t, kCPU).to(DType::f64).to_vector<double>(); }

void expect_values(const Tensor& t, const std::vector<double>& want, const std::string& what) {
  const auto got = on_cpu(t);
  DCHECK(got == want, what, ": got ", got.size(), " values, first ", got.empty() ? 0.0 : got[0], "; want first ",
         want.empty() ? 0.0 : want[0]);
}

void check_collectives(dist::ProcessGroup& g, int device) {
  const int n = g.size(), r = g.rank();
  const int64_t len = 1000;
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16}) {
    const std::string dt = dtype_name(dtype);
    Tensor t = on_gpu(std::vector<double>(len, r + 1), dtype, device);
    g.all_reduce(t, dist::ReduceOp::sum);
    expect_values(t, std::vector<double>(len, n * (n + 1) / 2), "all_reduce(sum) " + dt);
    Tensor m = on_gpu(std::vector<double>(len, r), dtype, device);
    g.all_reduce(m, dist::ReduceOp::max);
    expect_values(m, std::vector<double>(len, n - 1), "all_reduce(max) " + dt);
  }
  Tensor a = on_gpu(std::vector<double>(7, 2.0 * (r + 1)), DType::f32, device);
  g.all_reduce(a, dist::ReduceOp::avg);
  expect_values(a, std::vector<double>(7, n + 1.0), "all_reduce(avg)");

  Tensor in = on_gpu({double(r), double(r) + 0.5}, DType::f32, device);
  Tensor out = zeros({2 * n}, TensorOptions(DType::f32).with_device(cuda_device(device)));
  g.all_gather(in, out);
  std::vector<double> gathered;
  for (int k = 0; k < n; ++k) gathered.insert(gathered.end(), {double(k), k + 0.5});
  expect_values(out, gathered, "all_gather");

  std::vector<double> ramp(3 * n);
  for (int k = 0; k < 3 * n; ++k) ramp[k] = k;
  Tensor rs_out = zeros({3}, TensorOptions(DType::f64).with_device(cuda_device(device)));
  g.reduce_scatter(on_gpu(ramp, DType::f64, device), rs_out, dist::ReduceOp::sum);
  expect_values(rs_out, {double(n * 3 * r), double(n * (3 * r + 1)), double(n * (3 * r + 2))}, "reduce_scatter");

  Tensor b = on_gpu({double(r), 7.0}, DType::i64, device);
  g.broadcast(b, n - 1);
  expect_values(b, {double(n - 1), 7.0}, "broadcast from the last rank");
  g.barrier();

  // Two collectives in flight, waited in reverse order.
  Tensor x = on_gpu({1.0}, DType::f32, device), y = on_gpu({2.0}, DType::f32, device);
  auto wx = g.all_reduce_async(x, dist::ReduceOp::sum);
  auto wy = g.all_reduce_async(y, dist::ReduceOp::sum);
  wy->wait();
  wx->wait();
  DCHECK(wx->is_completed() && wy->is_completed(), "async work not completed after wait");
  expect_values(x, {double(n)}, "async x");
  expect_values(y, {2.0 * n}, "async y");

  if (n > 1) {
    Tensor s = on_gpu({double(r)}, DType::f32, device);
    if (r == 0) g.send(s, 1);
    if (r == 1) {
      g.recv(s, 0);
      expect_values(s, {0.0}, "recv from rank 0");
    }
  }
  auto sub = g.split(r % 2, r);
  Tensor c = on_gpu({1.0}, DType::f32, device);
  sub->all_reduce(c, dist::ReduceOp::sum);
  expect_values(c, {double(sub->size())}, "all_reduce over split(rank % 2)");
  DCHECK(sub->size() == (n + 1 - r % 2) / 2, "split size ", sub->size());

  expect_error([&] { g.all_reduce(zeros({4}), dist::ReduceOp::sum); }, {"rank", "all_reduce", "cuda:"},
               "a CPU tensor");
  if (n > 1)
    expect_error(
        [&] {
          g.reduce_scatter(on_gpu(std::vector<double>(n + 1, 1.0), DType::f32, device),
                           on_gpu({0.0}, DType::f32, device));
        },
        {"rank", "reduce_scatter", "equal shards"}, "uneven reduce_scatter");
  expect_error([&] { g.all_reduce(on_gpu({1.0}, DType::i32, device), dist::ReduceOp::avg); },
               {"rank", "avg needs a floating dtype"}, "avg of integers");
}

}  // namespace

int main() {
  auto world = dist::init_distributed();
  const int n = world->size(), r = world->rank();
  std::string why;
  if (!dist::nccl_built()) why = "this build of loom has no NCCL process group";
  else if (!cuda_available()) why = "no GPU (" + cuda_unavailable_reason() + ")";
  else if (cuda_device_count() < n) why = std::to_string(n) + " ranks need one GPU each, " +
                                          std::to_string(cuda_device_count()) + " visible";
  if (!why.empty()) {
    if (r == 0) std::printf("skipped: %s\n", why.c_str());
    return kSkip;
  }
  return dist_test::run_checks("nccl", [&](const dist::ProcessGroupPtr& bootstrap) {
    auto g = dist::make_nccl_process_group(bootstrap, r);
    DCHECK(g->backend() == "nccl" && g->size() == n && g->rank() == r, "group ", g->backend(), " ", g->rank(), "/",
           g->size());
    check_collectives(*g, r);
  });
}
