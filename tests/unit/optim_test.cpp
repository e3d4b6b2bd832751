#include <catch2/catch.hpp>

#include <cmath>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

TEST_CASE("clip_grad_norm scales gradients to the global norm", "[optim]") {
  Tensor a = zeros({2}, TensorOptions().with_requires_grad()), b = zeros({1}, TensorOptions().with_requires_grad());
  a.set_grad(from_vector<float>({3, 0}, {2}));
  b.set_grad(from_vector<float>({4}, {1}));
  CHECK(optim::clip_grad_norm({a, b}, 10.0) == Approx(5.0));
  CHECK(a.grad().to_vector<float>()[0] == 3.0f);  // under the cap: untouched
  CHECK(optim::clip_grad_norm({a, b}, 1.0) == Approx(5.0));
  CHECK(optim::grad_norm({a, b}) == Approx(1.0).epsilon(1e-5));
  b.set_grad(from_vector<float>({NAN}, {1}));
  CHECK(std::isnan(optim::clip_grad_norm({a, b}, 1.0)));
}

TEST_CASE("the gradient norm is one deterministic pass over every gradient", "[optim]") {
  // Sizes around the 8-lane body and the 16384-element chunks, f32 and f64.
  std::vector<Tensor> params;
  int64_t seed = 0;
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{16385}, int64_t{100003}}) {
    for (DType t : {DType::f32, DType::f64}) {
      Generator g(static_cast<uint64_t>(++seed));
      Tensor p = zeros({n}, TensorOptions(t).with_requires_grad());
      p.set_grad(mul(randn({n}, t, &g), static_cast<double>(n % 5 + 1)));
      params.push_back(p);
    }
  }
  long double want = 0;
  for (const Tensor& p : params)
    for (double v : p.grad().to(DType::f64).to_vector<double>()) want += static_cast<long double>(v) * v;
  const double norm = optim::grad_norm(params);
  CHECK(std::abs(norm - std::sqrt(static_cast<double>(want))) <= 1e-13 * norm);
  // the same bits whatever the thread count
  const int threads = num_threads();
  set_num_threads(1);
  const double serial = optim::grad_norm(params);
  set_num_threads(threads > 1 ? threads : 2);
  const double parallel = optim::grad_norm(params);
  set_num_threads(threads);
  CHECK(serial == norm);
  CHECK(parallel == norm);
  // halves take the per-tensor composition
  Tensor h = zeros({3}, TensorOptions(DType::bf16).with_requires_grad());
  h.set_grad(from_vector<float>({1, 2, 2}, {3}).to(DType::bf16));
  CHECK(optim::grad_norm({h}) == 3.0);
}

TEST_CASE("schedules: warm-up then cosine, linear or constant", "[optim]") {
  optim::Schedule s;
  s.kind = optim::Schedule::Kind::cosine;
  s.base_lr = 1.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.min_lr_ratio = 0.1;
  CHECK(s.lr_at(0) == Approx(0.1));
  CHECK(s.lr_at(9) == Approx(1.0));
  CHECK(s.lr_at(10) == Approx(1.0));
  CHECK(s.lr_at(60) == Approx(0.55));
  CHECK(s.lr_at(110) == Approx(0.1));
  CHECK(s.lr_at(500) == Approx(0.1));
  s.kind = optim::Schedule::Kind::linear;
  CHECK(s.lr_at(60) == Approx(0.55));
  s.kind = optim::Schedule::Kind::constant;
  CHECK(s.lr_at(60) == 1.0);
  CHECK_THROWS_WITH(optim::Schedule::kind_from_name("step"), Contains("unknown schedule 'step'"));
}

TEST_CASE("optimizer state round-trips and continues identically", "[optim]") {
  auto run = [](bool reload) {
    Generator g(4);
    nn::Linear model(3, 2, true, &g);
    auto opt = std::make_unique<optim::AdamW>(optim::decay_groups(model, 0.1));
    Tensor x = randn({5, 3}, {}, &g);
    std::vector<float> losses;
    for (int step = 0; step < 6; ++step) {
      if (reload && step == 3) {  // rebuild the optimizer from its state
        auto tensors = opt->state_tensors();
        auto scalars = opt->state_scalars();
        opt = std::make_unique<optim::AdamW>(optim::decay_groups(model, 0.1));
        opt->load_state(tensors, scalars);
      }
      Tensor loss = mean(mul(model.forward(x), model.forward(x)));
      opt->zero_grad();
      loss.backward();
      opt->step(0.01);
      losses.push_back(loss.item<float>());
    }
    return losses;
  };
  CHECK(run(false) == run(true));
}

TEST_CASE("optimizer misuse is reported by name", "[optim]") {
  nn::Linear model(3, 2);
  auto groups = optim::single_group(model);
  groups.push_back(groups[0]);
  CHECK_THROWS_WITH(optim::SGD(groups), Contains("'weight'") && Contains("more than once"));
  optim::AdamW opt(optim::single_group(model));
  CHECK_THROWS_WITH(opt.load_state({{"nothing.exp_avg", zeros({1})}}, {{"steps", 1}}), Contains("'nothing'"));
  CHECK_THROWS_WITH(opt.load_state({{"weight.exp_avg", zeros({1})}}, {{"steps", 1}}), Contains("weight.exp_avg"));
  CHECK_THROWS_WITH(optim::SGD(optim::single_group(model), optim::SGDOptions{0.0, 0.0, true}), Contains("Nesterov"));
}
