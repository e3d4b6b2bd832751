// ZeRO-1 against plain data parallel: W ranks each on their slice of a global
// batch, ZeroAdamW (sharded state, reduce-scatter + all-gather) must end with
// the parameters of DataParallel + optim::AdamW after 20 steps (f64, 1e-6
// relative), with gradient clipping on the shards giving the norms of
// DataParallel + optim::clip_grad_norm (1e-12). Group sizes (56 and 10
// elements) do not divide by 3 or 4, so the padding is exercised. Also: each
// rank holds ~2/W of AdamW's state; the state gathered to rank 0 has plain
// AdamW's names, shapes and values; plain AdamW's state loads and the next
// step matches; wrong state and a missing gradient are errors naming them.
#include <cmath>
#include <map>

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

// Names and values of two optimizer states (rank 0 of a ZeRO gather against plain AdamW).
void expect_same_state(const nn::NamedTensors& got, const nn::NamedTensors& want, const char* what) {
  std::map<std::string, Tensor> by_name(want.begin(), want.end());
  DCHECK(got.size() == want.size(), what, ": ", got.size(), " state tensors, want ", want.size());
  for (const auto& [name, t] : got) {
    auto it = by_name.find(name);
    DCHECK(it != by_name.end(), what, ": unexpected state '", name, "'");
    if (it == by_name.end()) continue;
    DCHECK(t.shape() == it->second.shape(), what, ": '", name, "' ", shape_str(t.shape()));
    if (t.shape() == it->second.shape()) {
      const double d = max_rel_diff({t}, {it->second});
      DCHECK(d <= 1e-6, what, ": '", name, "' differs by ", d);
    }
  }
}

}  // namespace

int main() {
  return dist_test::run_checks("zero-1", [](const dist::ProcessGroupPtr& world) {
    const int W = world->size();
    const int steps = 20;
    const double max_norm = 0.8;  // clips some steps, not all
    Net plain(7);
    dist::DataParallel dp(plain, world);
    optim::AdamW adam(optim::decay_groups(plain, 0.1));
    std::vector<double> want_norms, got_norms;
    const auto want = run_steps(world, plain, steps, [&] {
      dp.finish();
      want_norms.push_back(optim::clip_grad_norm(plain.parameters(), max_norm));
      adam.step(0.02);
      adam.zero_grad();
    });

    Net sharded(world->rank() == 0 ? 7 : 900 + world->rank());  // the broadcast must fix the other ranks
    dist::ZeroAdamW zero(optim::decay_groups(sharded, 0.1), world);
    const auto got = run_steps(world, sharded, steps, [&] {
      got_norms.push_back(zero.clip_grad_norm(max_norm));  // reduce-scatter, then the norm of the shards
      zero.step(0.02);
      zero.zero_grad();
    });
    Net init(7);
    DCHECK(max_rel_diff(got, init.parameters()) > 1e-3, "the parameters did not move");
    int clipped = 0;
    for (int s = 0; s < steps; ++s) {
      clipped += want_norms[s] > max_norm;
      DCHECK(std::abs(got_norms[s] - want_norms[s]) <= 1e-12 * want_norms[s], "step ", s, ": ZeRO grad norm ",
             got_norms[s], ", DataParallel ", want_norms[s]);
    }
    DCHECK(clipped > 0 && clipped < steps, "max_norm ", max_norm, " clipped ", clipped, " of ", steps, " steps");
    const double d = max_rel_diff(got, want);
    DCHECK(d <= 1e-6, "ZeRO-1 vs DataParallel + AdamW after ", steps, " steps: ", d);
    if (world->rank() == 0)
      std::printf("zero_test: max relative difference %.3g on %d ranks (%d of %d steps clipped)\n", d, W, clipped,
                  steps);
    // 56 + 10 parameters, padded per group: 2 * (ceil(56/W) + ceil(10/W)).
    const int64_t expect = 2 * ((56 + W - 1) / W + (10 + W - 1) / W);
    DCHECK(zero.state_numel() == expect, "state elements ", zero.state_numel(), " want ", expect);

    // Checkpoints: gathered to rank 0 in plain AdamW's layout; loading plain
    // AdamW's state and stepping once more matches plain AdamW.
    const auto gathered = zero.state_tensors();
    if (world->rank() == 0) expect_same_state(gathered, adam.state_tensors(), "gathered state");
    else DCHECK(gathered.empty(), "rank ", world->rank(), " got ", gathered.size(), " gathered state tensors");
    DCHECK(zero.state_scalars() == adam.state_scalars(), zero.state_scalars().dump(), " vs ", adam.state_scalars().dump());
    Net resumed(7);
    for (size_t i = 0; i < want.size(); ++i) resumed.parameters()[i].detach().copy_(want[i]);
    dist::ZeroAdamW loaded(optim::decay_groups(resumed, 0.1), world);
    loaded.load_state(adam.state_tensors(), adam.state_scalars());
    const auto after_plain = run_steps(world, plain, 1, [&] {
      dp.finish();
      adam.step(0.02);
      adam.zero_grad();
    });
    const auto after_loaded = run_steps(world, resumed, 1, [&] {
      loaded.step(0.02);
      loaded.zero_grad();
    });
    const double dl = max_rel_diff(after_loaded, after_plain);
    DCHECK(dl <= 1e-6, "a step after load_state differs from plain AdamW by ", dl);

    expect_error([&] { loaded.load_state({{"w1.exp_avg", zeros({3, 3}, DType::f64)}}, adam.state_scalars()); },
                 {"rank", "ZeroAdamW", "'w1.exp_avg'", "[3, 3]", "[7, 5]"}, "state of the wrong shape");
    expect_error([&] { loaded.load_state({{"w1.momentum_buffer", zeros({7, 5}, DType::f64)}}, adam.state_scalars()); },
                 {"rank", "'w1.momentum_buffer'", "not AdamW state"}, "state of another optimizer");

    Net missing(7);
    dist::ZeroAdamW zm(optim::decay_groups(missing, 0.1), world);
    expect_error([&] { zm.step(0.01); }, {"rank", "ZeroAdamW", "'w1'", "no gradient"}, "missing gradient");
  });
}
