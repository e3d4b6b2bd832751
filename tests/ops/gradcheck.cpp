#include "gradcheck.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>

namespace loom::testing {

namespace {

double weighted_loss(const OpFn& fn, const std::vector<Tensor>& inputs, const Tensor& w) {
  NoGradGuard guard;
  return sum(mul(fn(inputs), w)).item<double>();
}

// Storage offsets of every element of t, in row-major order of its shape.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> out;
  std::vector<int64_t> idx(static_cast<size_t>(t.dim()), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) off += idx[d] * t.stride(d);
    out.push_back(off);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++idx[d] < t.size(d)) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Elements probed per input: all of them up to kAllElements; above that every
// k-th element in row-major order, k the smallest stride at or above
// numel / kAllElements that shares no factor with the last dimension. While
// that stride is shorter than a row it lands in every row, and while the
// probes number at least a row's length they reach every column (both hold
// for the op table's large inputs), so an error confined to one row or one
// column of a tile (the usual way a blocked kernel goes wrong) is probed.
constexpr int64_t kAllElements = 512;

int64_t probe_stride(const Tensor& x) {
  if (x.numel() <= kAllElements) return 1;
  const int64_t last = x.dim() > 0 ? x.size(x.dim() - 1) : 1;
  int64_t stride = (x.numel() + kAllElements - 1) / kAllElements;
  while (std::gcd(stride, last) != 1) ++stride;
  return stride;
}

}  // namespace

void gradcheck(const OpFn& fn, std::vector<Tensor> inputs, const std::vector<bool>& differentiable, Generator& gen) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (differentiable[i]) inputs[i].requires_grad_(true);
  Tensor out = fn(inputs);
  REQUIRE(out.dtype() == DType::f64);
  Tensor w = randn(out.shape(), DType::f64, &gen);
  sum(mul(out, w)).backward();

  constexpr double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
  int checked = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!differentiable[i]) continue;
    Tensor x = inputs[i];
    INFO("input " << i << " of shape " << shape_str(x.shape()));
    REQUIRE(x.grad().defined());
    REQUIRE(x.grad().shape() == x.shape());
    const auto grad = x.grad().contiguous().to_vector<double>();
    // Perturb through the storage so non-contiguous views are probed in place.
    double* base = static_cast<double*>(x.storage()->data());
    const auto offsets = element_offsets(x);
    const auto stride = static_cast<size_t>(probe_stride(x));
    for (size_t e = 0; e < offsets.size(); e += stride) {
      double& slot = base[offsets[e]];
      const double saved = slot;
      slot = saved + eps;
      const double up = weighted_loss(fn, inputs, w);
      slot = saved - eps;
      const double down = weighted_loss(fn, inputs, w);
      slot = saved;
      const double numeric = (up - down) / (2 * eps);
      INFO("element " << e << ": analytic " << grad[e] << ", numeric " << numeric);
      const bool close = std::abs(grad[e] - numeric) <= atol + rtol * std::abs(numeric);
      CHECK(close);
      if (!close) return;  // the first mismatch says enough
      ++checked;
    }
  }
  CHECK(checked > 0);
}

}  // namespace loom::testing
