// DataParallel against one process: W ranks each training on their slice of
// a global batch must end, after 5 AdamW steps, with the parameters of one
// process training on the whole batch (1e-6 relative; the model is f64, so
// only summation order differs). Tried with one bucket per parameter and one
// bucket for all, overlap on and off, and with gradient accumulation under
// no_sync. Also: rank 0's initial weights win, and a parameter without a
// gradient is an error naming it.
#include <cmath>

#include <loom/dist/dist.hpp>
#include <loom/loom.hpp>

#include "dist_check.hpp"

using namespace loom;

namespace {

constexpr int64_t kBatch = 24, kIn = 5, kHidden = 16, kOut = 3;

// Two-layer MLP in f64, built from the functional ops.
struct Net : nn::Module {
  Tensor w1, b1, w2, b2, unused;
  explicit Net(uint64_t seed, bool with_unused = false) {
    Generator gen(seed);
    w1 = register_parameter("w1", mul(randn({kHidden, kIn}, DType::f64, &gen), 0.5));
    b1 = register_parameter("b1", mul(randn({kHidden}, DType::f64, &gen), 0.1));
    w2 = register_parameter("w2", mul(randn({kOut, kHidden}, DType::f64, &gen), 0.3));
    b2 = register_parameter("b2", zeros({kOut}, DType::f64));
    if (with_unused) unused = register_parameter("unused", zeros({2}, DType::f64));
  }
  Tensor forward(const Tensor& x) { return linear(gelu(linear(x, w1, b1)), w2, b2); }
};

struct Data {
  Tensor x, y;
};

Data global_batch(int step) {
  Generator gen(100 + static_cast<uint64_t>(step));
  Data d;
  d.x = randn({kBatch, kIn}, DType::f64, &gen);
  d.y = randint(0, kOut, {kBatch}, DType::i64, &gen);
  return d;
}

std::unique_ptr<optim::AdamW> adamw(Net& net) { return std::make_unique<optim::AdamW>(optim::decay_groups(net, 0.1)); }

// One process, whole batch.
std::vector<Tensor> reference(int steps) {
  Net net(7);
  auto opt = adamw(net);
  for (int s = 0; s < steps; ++s) {
    Data d = global_batch(s);
    cross_entropy(net.forward(d.x), d.y).backward();
    opt->step(0.05);
    opt->zero_grad();
  }
  return net.parameters();
}

double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto va = a[i].to_vector<double>(), vb = b[i].to_vector<double>();
    double scale = 1e-12;
    for (double v : va) scale = std::max(scale, std::abs(v));
    for (size_t j = 0; j < va.size(); ++j) worst = std::max(worst, std::abs(va[j] - vb[j]) / scale);
  }
  return worst;
}

// W ranks, each its slice of the batch, in `micro` micro-batches (no_sync for all but the last).
std::vector<Tensor> data_parallel(dist::ProcessGroupPtr g, int steps, dist::DataParallelOptions o, int micro,
                                  size_t* buckets) {
  const int W = g->size(), R = g->rank();
  Net net(R == 0 ? 7 : 1000 + R);  // other ranks start elsewhere: the broadcast must fix it
  dist::DataParallel dp(net, g, o);
  if (buckets) *buckets = dp.bucket_names().size();
  auto opt = adamw(net);
  const int64_t local = kBatch / W, per_micro = local / micro;
  for (int s = 0; s < steps; ++s) {
    Data d = global_batch(s);
    for (int m = 0; m < micro; ++m) {
      Tensor x = d.x.narrow(0, R * local + m * per_micro, per_micro);
      Tensor y = d.y.narrow(0, R * local + m * per_micro, per_micro);
      Tensor loss = div(cross_entropy(net.forward(x), y), static_cast<double>(micro));
      if (m + 1 < micro) {
        auto guard = dp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    // Overlap: every bucket went out during backward; otherwise none did.
    DCHECK(dp.buckets_launched() == (o.overlap ? dp.bucket_names().size() : 0u), "launched during backward: ",
           dp.buckets_launched());
    dp.finish();
    opt->step(0.05);
    opt->zero_grad();
  }
  return net.parameters();
}

}  // namespace

int main() {
  return dist_test::run_checks("data parallel", [](const dist::ProcessGroupPtr& world) {
    const int W = world->size();
    DCHECK(kBatch % (W * 2) == 0, "the batch of ", kBatch, " must split into 2 micro-batches on ", W, " ranks");
    const auto want = reference(5);
    for (int64_t cap : {int64_t{1}, int64_t{1} << 30}) {
      for (bool overlap : {true, false}) {
        for (int micro : {1, 2}) {
          dist::DataParallelOptions o;
          o.bucket_cap_bytes = cap;
          o.overlap = overlap;
          size_t buckets = 0;
          const auto got = data_parallel(world, 5, o, micro, &buckets);
          const double diff = max_rel_diff(want, got);
          DCHECK(diff < 1e-6, "cap ", cap, " overlap ", overlap, " micro ", micro, ": max relative difference ", diff);
          DCHECK(buckets == (cap == 1 ? 4u : 1u), "cap ", cap, ": ", buckets, " buckets");
          if (world->rank() == 0)
            std::printf("cap %lld overlap %d micro %d: %zu buckets, max rel diff %.3g\n", static_cast<long long>(cap),
                        overlap, micro, buckets, diff);
        }
      }
    }
    // Buckets go in reverse creation order.
    {
      Net net(7);
      dist::DataParallelOptions o;
      o.bucket_cap_bytes = 1;
      dist::DataParallel dp(net, world, o);
      const auto names = dp.bucket_names();
      DCHECK(names.size() == 4 && names[0][0] == "b2" && names[3][0] == "w1", "bucket order");
    }
    // A parameter without a gradient is named.
    for (bool overlap : {true, false}) {
      Net net(7, true);
      dist::DataParallelOptions o;
      o.overlap = overlap;
      o.bucket_cap_bytes = 1;
      dist::DataParallel dp(net, world, o);
      Data d = global_batch(0);
      cross_entropy(net.forward(d.x), d.y).backward();
      const std::string r = "rank " + std::to_string(world->rank());
      expect_error([&] { dp.finish(); }, {r.c_str(), "unused", "no gradient"}, "missing gradient");
    }
    world->barrier();
  });
}
