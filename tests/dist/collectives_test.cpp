// Every collective of the MPI process group, checked bitwise: the inputs are
// small integers (exactly summable in f32), the expected result is computed
// by simulating every rank's input locally. Sizes 0, 1, 7 (not divisible by
// the world size) and 1000; f32, f64, bf16, f16, i32, i64 (u8 where it
// applies; the small integers are exact in the 16-bit floats too);
// async handles waited out of order; sub-groups by split; the start-up
// consistency check; error messages.
#include <loom/dist/dist.hpp>
#include <loom/loom.hpp>

#include <cmath>

#include "dist_check.hpp"

using namespace loom;
using dist::ReduceOp;

namespace {

// Rank r's input element i for a test tag.
double input(int r, int64_t i, int tag) { return static_cast<double>(((i * 7 + r * 3 + tag) % 11) - 5); }

Tensor make(const std::vector<double>& v, DType dt) { return from_vector(v, {static_cast<int64_t>(v.size())}).to(dt); }

std::vector<double> values(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

void test_all_reduce(dist::ProcessGroup& g, int64_t n, DType dt, ReduceOp op) {
  const int W = g.size(), R = g.rank();
  std::vector<double> mine(n), want(n);
  for (int64_t i = 0; i < n; ++i) {
    mine[i] = input(R, i, 1) * W;  // multiples of W, so avg is exact
    double acc = op == ReduceOp::max ? -1e300 : 0;
    for (int r = 0; r < W; ++r) acc = op == ReduceOp::max ? std::max(acc, input(r, i, 1) * W) : acc + input(r, i, 1) * W;
    want[i] = op == ReduceOp::avg ? acc / W : acc;
  }
  Tensor t = make(mine, dt);
  g.all_reduce(t, op);
  DCHECK(values(t) == want, "all_reduce(", dist::reduce_op_name(op), ") n=", n, " ", dtype_name(dt));
}

void test_all_gather(dist::ProcessGroup& g, int64_t n, DType dt) {
  const int W = g.size(), R = g.rank();
  std::vector<double> mine(n), want;
  for (int64_t i = 0; i < n; ++i) mine[i] = (input(R, i, 2) + 5);
  for (int r = 0; r < W; ++r)
    for (int64_t i = 0; i < n; ++i) want.push_back((input(r, i, 2) + 5));
  Tensor out = zeros({n * W}, dt);
  g.all_gather(make(mine, dt), out);
  DCHECK(values(out) == want, "all_gather n=", n, " ", dtype_name(dt));
}

void test_reduce_scatter(dist::ProcessGroup& g, int64_t n, DType dt, ReduceOp op) {
  const int W = g.size(), R = g.rank();
  std::vector<double> mine(n), want;
  const auto shard = dist::shard_range(n, R, W);
  for (int64_t i = 0; i < n; ++i) mine[i] = input(R, i, 3) * W;
  for (int64_t i = shard.begin; i < shard.end; ++i) {
    double acc = op == ReduceOp::max ? -1e300 : 0;
    for (int r = 0; r < W; ++r) acc = op == ReduceOp::max ? std::max(acc, input(r, i, 3) * W) : acc + input(r, i, 3) * W;
    want.push_back(op == ReduceOp::avg ? acc / W : acc);
  }
  Tensor out = zeros({shard.size()}, dt);
  g.reduce_scatter(make(mine, dt), out, op);
  DCHECK(values(out) == want, "reduce_scatter(", dist::reduce_op_name(op), ") n=", n, " ", dtype_name(dt));
}

void test_broadcast(dist::ProcessGroup& g, int64_t n, DType dt) {
  const int W = g.size(), R = g.rank(), root = W - 1;
  std::vector<double> mine(n, -1), want(n);
  for (int64_t i = 0; i < n; ++i) {
    want[i] = (input(root, i, 4) + 5);
    if (R == root) mine[i] = want[i];
  }
  Tensor t = make(mine, dt);
  g.broadcast(t, root);
  DCHECK(values(t) == want, "broadcast n=", n, " ", dtype_name(dt));
}

void test_send_recv(dist::ProcessGroup& g, int64_t n) {
  const int W = g.size(), R = g.rank();
  const int next = (R + 1) % W, prev = (R + W - 1) % W;
  std::vector<double> mine(n), want(n);
  for (int64_t i = 0; i < n; ++i) {
    mine[i] = input(R, i, 5);
    want[i] = input(prev, i, 5);
  }
  Tensor in = zeros({n}, DType::f32), out = make(mine, DType::f32);
  auto r = g.recv_async(in, prev, 7);
  auto s = g.send_async(out, next, 7);
  s->wait();
  r->wait();
  DCHECK(values(in) == want, "send/recv ring n=", n);
}

void test_async_out_of_order(dist::ProcessGroup& g) {
  const int W = g.size();
  std::vector<Tensor> ts;
  std::vector<dist::WorkPtr> works;
  for (int k = 0; k < 5; ++k) {
    ts.push_back(full({100}, static_cast<double>(k + g.rank())));
    works.push_back(g.all_reduce_async(ts.back(), ReduceOp::sum));
  }
  for (int k = 4; k >= 0; --k) works[k]->wait();
  for (int k = 0; k < 5; ++k) {
    const double want = k * W + W * (W - 1) / 2.0;
    DCHECK(values(ts[k]) == std::vector<double>(100, want), "async all_reduce #", k, " waited out of order");
    DCHECK(works[k]->is_completed());
  }
}

void test_split(dist::ProcessGroup& g) {
  const int W = g.size(), R = g.rank();
  const int tp = W % 2 == 0 ? 2 : 1;
  auto tp_group = g.split(R / tp, R);  // consecutive ranks: one tensor-parallel group
  auto dp_group = g.split(R % tp, R);  // strided ranks: one data-parallel group
  DCHECK(tp_group->size() == tp && tp_group->rank() == R % tp, "tp group of rank ", R);
  DCHECK(dp_group->size() == W / tp && dp_group->rank() == R / tp, "dp group of rank ", R);
  Tensor t = full({3}, static_cast<double>(R));
  tp_group->all_reduce(t, ReduceOp::sum);
  double want = 0;
  for (int r = (R / tp) * tp; r < (R / tp) * tp + tp; ++r) want += r;
  DCHECK(values(t) == std::vector<double>(3, want), "all_reduce in the tp group");
  Tensor u = full({2}, static_cast<double>(R));
  dp_group->all_reduce(u, ReduceOp::max);
  DCHECK(values(u) == std::vector<double>(2, (W / tp - 1) * tp + R % tp), "all_reduce(max) in the dp group");
}

void test_errors(dist::ProcessGroup& g) {
  const std::string r = "rank " + std::to_string(g.rank());
  expect_error([&] { g.all_reduce(zeros({4}, DType::i64), ReduceOp::avg); }, {r.c_str(), "all_reduce(avg)", "i64"},
               "avg over i64");
  expect_error([&] { g.all_reduce(zeros({4, 4}).t()); }, {r.c_str(), "contiguous"}, "non-contiguous");
  expect_error([&] { g.all_gather(zeros({3}), zeros({5})); }, {r.c_str(), "all_gather", "expected"}, "gather size");
  expect_error([&] { g.reduce_scatter(zeros({7}), zeros({7})); }, {r.c_str(), "reduce_scatter", "shard"}, "scatter size");
  expect_error([&] { g.send(zeros({1}), g.size()); }, {r.c_str(), "outside the group"}, "bad peer");
  // bf16 sums add in float and round back once: on two ranks 1 + 2^-9 rounds
  // to 1 (bf16's spacing at 1 is 2^-7); adding the 16-bit words would not.
  Tensor b = full({5}, g.rank() == 0 ? 1.0 : 1.0 / 512, DType::bf16);
  g.all_reduce(b, ReduceOp::sum);
  if (g.size() == 2) DCHECK(values(b) == std::vector<double>(5, 1.0), "bf16 sum rounding");
  // max compares values, not bits: -2 (0xC000) beats -3 (0xC040)
  Tensor m = full({3}, g.rank() == 0 ? -2.0 : -3.0, DType::bf16);
  g.all_reduce(m, ReduceOp::max);
  DCHECK(values(m) == std::vector<double>(3, -2.0), "bf16 max of negatives");
  // an f16 average whose sum would overflow f16 (65504) still comes out right
  Tensor h = full({4}, 40000.0, DType::f16);
  g.all_reduce(h, ReduceOp::avg);
  DCHECK(values(h) == std::vector<double>(4, 40000.0), "f16 avg past f16's range in the sum");
}

void test_consistency(dist::ProcessGroup& g) {
  dist::check_consistency(g, {{"recipe", "{\"a\":1}"}, {"model parameters", "w [2, 3]"}});
  const std::string recipe = g.rank() == 1 ? "{\"a\":2}" : "{\"a\":1}";
  expect_error([&] { dist::check_consistency(g, {{"recipe", recipe}, {"model parameters", "w [2, 3]"}}); },
               {"rank 1 differs from rank 0 in the recipe"}, "recipe mismatch");
}

}  // namespace

int main() {
  return dist_test::run_checks("collectives", [](const dist::ProcessGroupPtr& world) {
    DCHECK(world->backend() == "mpi" && world->size() > 1, "run this under mpirun with 2+ ranks");
    for (int64_t n : {0, 1, 7, 1000}) {
      for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
        for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
          if (op == ReduceOp::avg && !is_floating(dt)) continue;
          test_all_reduce(*world, n, dt, op);
          test_reduce_scatter(*world, n, dt, op);
        }
        test_all_gather(*world, n, dt);
        test_broadcast(*world, n, dt);
      }
      test_all_gather(*world, n, DType::u8);
      test_broadcast(*world, n, DType::u8);
      test_send_recv(*world, n);
    }
    test_async_out_of_order(*world);
    test_split(*world);
    test_errors(*world);
    test_consistency(*world);
    world->barrier();
  });
}
