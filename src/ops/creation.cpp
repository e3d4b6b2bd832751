#include "loom/ops/creation.hpp"

#include <cmath>

#include "loom/core/cuda.hpp"
#include "ops/common.hpp"

namespace loom {

Tensor full(const Shape& shape, double value, TensorOptions options) {
  const bool rg = options.requires_grad;
  options.requires_grad = false;
  Tensor t = empty(shape, options);
  kernels::backend(t.device()).fill(t, value);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), TensorOptions(t.dtype()).with_device(t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), TensorOptions(t.dtype()).with_device(t.device())); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, TensorOptions(t.dtype()).with_device(t.device()));
}
Tensor empty_like(const Tensor& t) { return empty(t.shape(), TensorOptions(t.dtype()).with_device(t.device())); }
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  LOOM_CHECK(step != 0, "arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = start + static_cast<double>(i) * step;
  Tensor host = from_vector(values, {n});
  const bool rg = options.requires_grad;
  Tensor t = host.to(options.dtype);
  if (!options.device.is_cpu()) t = to_device(t, options.device);
  if (rg) t.requires_grad_(true);
  return t;
}

Tensor arange(int64_t end, TensorOptions options) { return arange(0.0, static_cast<double>(end), 1.0, options); }

namespace {
Tensor random_tensor(const Shape& shape, TensorOptions options, Generator* gen, bool normal) {
  LOOM_CHECK(is_floating(options.dtype), normal ? "randn" : "rand", ": dtype must be floating, got ",
             dtype_name(options.dtype));
  const DType wanted = options.dtype;
  const bool rg = options.requires_grad;
  // Draw in f32 (or f64) and round halves afterwards, so a bf16 draw equals
  // the f32 draw rounded.
  Tensor t = empty(shape, TensorOptions(wanted == DType::f64 ? DType::f64 : DType::f32).with_device(options.device));
  const ops::DrawStart at = ops::reserve_draw(gen, t.numel());
  auto& k = kernels::backend(t.device());
  normal ? k.normal(t, at.seed, at.block) : k.uniform(t, at.seed, at.block);
  if (t.dtype() != wanted) t = t.to(wanted);
  if (rg) t.requires_grad_(true);
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen) {
  return random_tensor(shape, options, gen, false);
}
Tensor randn(const Shape& shape, TensorOptions options, Generator* gen) {
  return random_tensor(shape, options, gen, true);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options, Generator* gen) {
  LOOM_CHECK(high > low, "randint: empty range [", low, ", ", high, ")");
  Tensor u = rand(shape, DType::f64, gen);
  std::vector<int64_t> values(static_cast<size_t>(u.numel()));
  const auto uv = u.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = std::min(high - 1, low + static_cast<int64_t>(uv[i] * static_cast<double>(high - low)));
  return from_vector(values, shape).to(options.dtype);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad) {
  LOOM_CHECK(static_cast<int64_t>(values.size()) == numel(shape), "from_vector: ", values.size(),
             " values for shape ", shape_str(shape), " (", numel(shape), " elements)");
  Tensor t = empty(shape, TensorOptions(dtype_of<T>));
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < values.size(); ++i) t.data<bool>()[i] = values[i];
  } else {
    std::copy(values.begin(), values.end(), t.data<T>());
  }
  if (requires_grad) t.requires_grad_(true);
  return t;
}

template Tensor from_vector<float>(const std::vector<float>&, const Shape&, bool);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, bool);
template Tensor from_vector<bf16>(const std::vector<bf16>&, const Shape&, bool);
template Tensor from_vector<f16>(const std::vector<f16>&, const Shape&, bool);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, bool);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, bool);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, bool);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, bool);

}  // namespace loom
