// ZeRO-1 against plain data parallel: W ranks each on their slice of a global
// batch, ZeroAdamW (sharded state, reduce-scatter + all-gather) must end with
// the parameters of DataParallel + optim::AdamW after 20 steps (f64, 1e-6
// relative). Group sizes (56 and 10 elements) do not divide by 3 or 4, so the
// padding is exercised. Also: each rank holds ~2/W of AdamW's state, and a
// missing gradient is an error naming the parameter.
#include <cmath>

#include <loom/dist/dist.hpp>
#include <loom/dist/zero.hpp>
#include <loom/loom.hpp>

#include "dist_check.hpp"

using namespace loom;

namespace {

constexpr int64_t kBatch = 24, kIn = 5, kHidden = 7, kOut = 3;

struct Net : nn::Module {
  Tensor w1, b1, w2, b2;
  explicit Net(uint64_t seed) {
    Generator gen(seed);
    w1 = register_parameter("w1", mul(randn({kHidden, kIn}, DType::f64, &gen), 0.5));
    b1 = register_parameter("b1", mul(randn({kHidden}, DType::f64, &gen), 0.1));
    w2 = register_parameter("w2", mul(randn({kOut, kHidden}, DType::f64, &gen), 0.3));
    b2 = register_parameter("b2", zeros({kOut}, DType::f64));
  }
  Tensor forward(const Tensor& x) { return linear(gelu(linear(x, w1, b1)), w2, b2); }
};

void global_batch(int step, Tensor& x, Tensor& y) {
  Generator gen(500 + static_cast<uint64_t>(step));
  x = randn({kBatch, kIn}, DType::f64, &gen);
  y = randint(0, kOut, {kBatch}, DType::i64, &gen);
}

double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto va = a[i].to_vector<double>(), vb = b[i].to_vector<double>();
    double scale = 1e-12;
    for (double v : vb) scale = std::max(scale, std::abs(v));
    for (size_t j = 0; j < va.size(); ++j) worst = std::max(worst, std::abs(va[j] - vb[j]) / scale);
  }
  return worst;
}

template <class Step>
std::vector<Tensor> run_steps(dist::ProcessGroupPtr g, Net& net, int steps, Step&& step) {
  const int64_t local = kBatch / g->size();
  for (int s = 0; s < steps; ++s) {
    Tensor x, y;
    global_batch(s, x, y);
    cross_entropy(net.forward(x.narrow(0, g->rank() * local, local)), y.narrow(0, g->rank() * local, local))
        .backward();
    step();
  }
  return net.parameters();
}

}  // namespace

int main() {
  return dist_test::run_checks("zero-1", [](const dist::ProcessGroupPtr& world) {
    const int W = world->size();
    const int steps = 20;
    Net plain(7);
    dist::DataParallel dp(plain, world);
    optim::AdamW adam(optim::decay_groups(plain, 0.1));
    const auto want = run_steps(world, plain, steps, [&] {
      dp.finish();
      adam.step(0.02);
      adam.zero_grad();
    });

    Net sharded(world->rank() == 0 ? 7 : 900 + world->rank());  // the broadcast must fix the other ranks
    dist::ZeroAdamW zero(optim::decay_groups(sharded, 0.1), world);
    const auto got = run_steps(world, sharded, steps, [&] {
      zero.step(0.02);
      zero.zero_grad();
    });
    Net init(7);
    DCHECK(max_rel_diff(got, init.parameters()) > 1e-3, "the parameters did not move");
    const double d = max_rel_diff(got, want);
    DCHECK(d <= 1e-6, "ZeRO-1 vs DataParallel + AdamW after ", steps, " steps: ", d);
    if (world->rank() == 0) std::printf("zero_test: max relative difference %.3g on %d ranks\n", d, W);
    // 56 + 10 parameters, padded per group: 2 * (ceil(56/W) + ceil(10/W)).
    const int64_t expect = 2 * ((56 + W - 1) / W + (10 + W - 1) / W);
    DCHECK(zero.state_numel() == expect, "state elements ", zero.state_numel(), " want ", expect);

    Net missing(7);
    dist::ZeroAdamW zm(optim::decay_groups(missing, 0.1), world);
    expect_error([&] { zm.step(0.01); }, {"rank", "ZeroAdamW", "'w1'", "no gradient"}, "missing gradient");
  });
}
