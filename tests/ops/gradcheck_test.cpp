// gradcheck: every differentiable op of the table against central finite
// differences in f64, on the table's shapes (broadcasting, non-contiguous).
#include <cmath>
#include <sstream>

#include "register.hpp"

namespace loom::testing {
namespace {

// Loss whose gradient is the fixed random weighting w of the output.
double weighted_loss(const OpCase& c, const std::vector<Tensor>& inputs, const Tensor& w) {
  NoGradGuard guard;
  return sum(mul(c.fn(inputs), w)).item<double>();
}

// Offsets into storage of every element of t, in row-major order of its shape.
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

void gradcheck(const OpCase& c) {
  Generator gen(20261128);
  std::vector<Tensor> inputs = make_inputs(c, DType::f64, gen);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (c.inputs[i].differentiable()) inputs[i].requires_grad_(true);

  Tensor out = c.fn(inputs);
  REQUIRE(out.dtype() == DType::f64);
  Tensor w = randn(out.shape(), DType::f64, &gen);
  sum(mul(out, w)).backward();

  constexpr double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
  int checked = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!c.inputs[i].differentiable()) continue;
    Tensor x = inputs[i];
    Tensor analytic = x.grad();
    INFO("input " << i << " of shape " << shape_str(x.shape()));
    REQUIRE(analytic.defined());
    REQUIRE(analytic.shape() == x.shape());
    const auto grad = analytic.contiguous().to_vector<double>();
    double* base = static_cast<double*>(x.storage()->data());
    const auto offsets = element_offsets(x);
    for (size_t e = 0; e < offsets.size(); ++e) {
      double& slot = base[offsets[e]];
      const double saved = slot;
      slot = saved + eps;
      const double up = weighted_loss(c, inputs, w);
      slot = saved - eps;
      const double down = weighted_loss(c, inputs, w);
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

const bool registered = register_cases("gradcheck.", "[gradcheck]", [](const OpCase&) { return true; }, gradcheck);

}  // namespace
}  // namespace loom::testing
