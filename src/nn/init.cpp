#include "loom/nn/init.hpp"

#include <cmath>

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom::nn::init {

namespace {
void assign(Tensor& t, const Tensor& values) {
  NoGradGuard guard;
  t.copy_(values);
}
}  // namespace

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  assign(t, add(mul(randn(t.shape(), t.dtype(), gen), std), mean));
}

void uniform_(Tensor& t, double low, double high, Generator* gen) {
  assign(t, add(mul(rand(t.shape(), t.dtype(), gen), high - low), low));
}

void zeros_(Tensor& t) {
  NoGradGuard guard;
  t.fill_(0.0);
}

void ones_(Tensor& t) {
  NoGradGuard guard;
  t.fill_(1.0);
}

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  LOOM_CHECK(w.dim() >= 2, "init: fan in/out need a weight with at least 2 dims, got ", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  uniform_(t, -a, a, gen);
}

void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), gen);
}

void kaiming_normal_(Tensor& t, double gain, Generator* gen) {
  normal_(t, 0.0, gain / std::sqrt(static_cast<double>(fans(t).first)), gen);
}

void kaiming_uniform_(Tensor& t, double gain, Generator* gen) {
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fans(t).first));
  uniform_(t, -bound, bound, gen);
}

}  // namespace loom::nn::init
