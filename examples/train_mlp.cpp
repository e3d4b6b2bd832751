// Trains a two-layer MLP on Fashion-MNIST (the Debian dataset-fashion-mnist
// package) with mini-batch SGD + momentum, and reports test accuracy.
//
//   build/bin/train_mlp [--epochs 5] [--batch 128] [--lr 0.05] [--hidden 256]
//                       [--data /usr/share/datasets/fashion-mnist] [--seed 0]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <loom/data/idx.hpp>
#include <loom/loom.hpp>

using namespace loom;

namespace {

struct Options {
  int epochs = 5;
  int64_t batch = 128;
  double lr = 0.05;
  double momentum = 0.9;
  int64_t hidden = 256;
  uint64_t seed = 0;
  std::string data = "/usr/share/datasets/fashion-mnist";
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::puts("usage: train_mlp [--epochs N] [--batch N] [--lr X] [--hidden N] [--data DIR] [--seed N]");
      std::exit(0);
    }
    LOOM_CHECK(i + 1 < argc, "train_mlp: option ", key, " needs a value");
    const std::string value = argv[++i];
    if (key == "--epochs") o.epochs = std::stoi(value);
    else if (key == "--batch") o.batch = std::stoll(value);
    else if (key == "--lr") o.lr = std::stod(value);
    else if (key == "--hidden") o.hidden = std::stoll(value);
    else if (key == "--data") o.data = value;
    else if (key == "--seed") o.seed = std::stoull(value);
    else LOOM_FAIL("train_mlp: unknown option '", key, "' (try --help)");
  }
  return o;
}

// u8 images [N, 28, 28] -> f32 [N, 784] in [0, 1]; u8 labels -> i64.
std::pair<Tensor, Tensor> load(const std::string& dir, const std::string& split) {
  Tensor images = data::read_idx(dir + "/" + split + "-images-idx3-ubyte.gz");
  Tensor labels = data::read_idx(dir + "/" + split + "-labels-idx1-ubyte.gz");
  return {div(images.to(DType::f32).reshape({images.size(0), -1}), 255.0), labels.to(DType::i64)};
}

struct Mlp {
  Tensor w1, b1, w2, b2;
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor forward(const Tensor& x) const { return linear(relu(linear(x, w1, b1)), w2, b2); }
};

Mlp init(int64_t in, int64_t hidden, int64_t out, Generator& gen) {
  auto kaiming = [&](int64_t fan_out, int64_t fan_in) {
    return mul(randn({fan_out, fan_in}, {}, &gen), std::sqrt(2.0 / static_cast<double>(fan_in))).requires_grad_();
  };
  return {kaiming(hidden, in), zeros({hidden}, TensorOptions().with_requires_grad()), kaiming(out, hidden),
          zeros({out}, TensorOptions().with_requires_grad())};
}

double accuracy(const Mlp& model, const Tensor& x, const Tensor& y) {
  NoGradGuard guard;
  int64_t correct = 0;
  for (int64_t start = 0; start < x.size(0); start += 1000) {
    const int64_t n = std::min<int64_t>(1000, x.size(0) - start);
    Tensor pred = argmax(model.forward(x.narrow(0, start, n)), 1);
    correct += sum(eq(pred, y.narrow(0, start, n))).item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  auto [train_x, train_y] = load(opt.data, "train");
  auto [test_x, test_y] = load(opt.data, "t10k");
  std::printf("Fashion-MNIST: %lld train, %lld test images; MLP 784-%lld-10, batch %lld, lr %g\n",
              static_cast<long long>(train_x.size(0)), static_cast<long long>(test_x.size(0)),
              static_cast<long long>(opt.hidden), static_cast<long long>(opt.batch), opt.lr);

  Generator gen(opt.seed);
  Mlp model = init(784, opt.hidden, 10, gen);
  std::vector<Tensor> velocity;
  for (const auto& p : model.params()) velocity.push_back(zeros_like(p));

  const int64_t n = train_x.size(0), steps_per_epoch = n / opt.batch;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    // a seeded permutation per epoch
    std::vector<double> keys = rand({n}, DType::f64, &gen).to_vector<double>();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
    const Tensor perm = from_vector(order, {n});
    double running = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      Tensor idx = perm.narrow(0, step * opt.batch, opt.batch);
      Tensor loss = cross_entropy(model.forward(index_select(train_x, 0, idx)), index_select(train_y, 0, idx));
      loss.backward();
      {
        NoGradGuard guard;
        auto params = model.params();
        for (size_t i = 0; i < params.size(); ++i) {
          velocity[i].mul_(opt.momentum).add_(params[i].grad());
          params[i].add_(velocity[i], -opt.lr);
          params[i].zero_grad();
        }
      }
      running = step == 0 ? loss.item<float>() : 0.98 * running + 0.02 * loss.item<float>();
      if ((step + 1) % 100 == 0 || step + 1 == steps_per_epoch) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double done = static_cast<double>(epoch * steps_per_epoch + step + 1);
        std::printf("epoch %d step %4lld/%lld  loss %.4f  %.0f samples/s\n", epoch + 1,
                    static_cast<long long>(step + 1), static_cast<long long>(steps_per_epoch), running,
                    done * static_cast<double>(opt.batch) / secs);
        std::fflush(stdout);
      }
    }
    std::printf("epoch %d: test accuracy %.4f\n", epoch + 1, accuracy(model, test_x, test_y));
  }
  return 0;
} catch (const loom::Error& e) {
  std::fprintf(stderr, "train_mlp: %s\n", e.what());
  return 1;
}
