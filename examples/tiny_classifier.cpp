// The README example: a two-layer classifier on synthetic data, trained with plain SGD.
#include <iostream>
#include <loom/loom.hpp>
using namespace loom;

int main() {
  Generator gen(0);
  Tensor x = randn({256, 4}, {}, &gen);                                  // inputs
  Tensor y = argmax(matmul(x, randn({4, 3}, {}, &gen)), 1);              // labels from a hidden rule
  Tensor w1 = mul(randn({32, 4}, {}, &gen), 0.5).requires_grad_(), b1 = zeros({32}).requires_grad_();
  Tensor w2 = mul(randn({3, 32}, {}, &gen), 0.2).requires_grad_(), b2 = zeros({3}).requires_grad_();
  for (int step = 0; step < 300; ++step) {
    Tensor loss = cross_entropy(linear(gelu(linear(x, w1, b1)), w2, b2), y);
    loss.backward();
    NoGradGuard no_grad;                                                 // the SGD update is not recorded
    for (Tensor p : {w1, b1, w2, b2}) { p.add_(p.grad(), -0.5); p.zero_grad(); }
    if (step % 100 == 0) std::cout << "step " << step << " loss " << loss.item<float>() << "\n";
  }
}
