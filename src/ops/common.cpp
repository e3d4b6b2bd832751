#include "ops/common.hpp"

#include "loom/ops/elementwise.hpp"

namespace loom::ops {

namespace {
int float_rank(DType t) {
  switch (t) {
    case DType::f64: return 3;
    case DType::f32: return 2;
    case DType::bf16:
    case DType::f16: return 1;
    default: return 0;
  }
}
}  // namespace

std::optional<std::pair<Tensor, Tensor>> promoted_pair(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.dtype() == b.dtype()) return std::nullopt;
  const int ra = float_rank(a.dtype()), rb = float_rank(b.dtype());
  if (ra == 0 || rb == 0) return std::nullopt;  // not both floating: the op's own check speaks
  // bf16 with f16: neither holds the other, f32 holds both.
  const DType wide = ra == rb ? DType::f32 : (ra > rb ? a.dtype() : b.dtype());
  return std::make_pair(a.dtype() == wide ? a : to_dtype(a, wide), b.dtype() == wide ? b : to_dtype(b, wide));
}

Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t.detach();
  const size_t n = shape.size(), m = t.shape().size();
  Strides strides(n, 0);
  for (size_t i = 0; i < m; ++i) {
    const size_t j = n - m + i;
    strides[j] = t.shape()[i] == 1 && shape[j] != 1 ? 0 : t.strides()[i];
  }
  return make_view(t, shape, strides, t.offset());
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  LOOM_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", dtype_name(a.dtype()), " ", shape_str(a.shape()),
             " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()), " (convert one with .to())");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LOOM_CHECK(a.device() == b.device(), op, ": tensors on different devices, ", a.device().str(), " vs ",
             b.device().str(), " (move one with loom::to_device or Tensor::to)");
}

void check_floating(const Tensor& t, const char* op) {
  LOOM_CHECK(is_floating(t.dtype()), op, ": expected a floating tensor, got ", dtype_name(t.dtype()), " ",
             shape_str(t.shape()));
}

void check_integer_index(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  LOOM_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, op, ": '", arg, "' must be i64 or i32, got ",
             dtype_name(t.dtype()));
}

void check_index_range(const Tensor& index, int64_t size, const char* op) {
  const auto values = index.to_vector<int64_t>();
  for (size_t i = 0; i < values.size(); ++i)
    LOOM_CHECK(values[i] >= 0 && values[i] < size, op, ": index ", values[i], " (at position ", i,
               ") is out of range for a dimension of size ", size);
}

AxisSplit split_at(const Shape& shape, int64_t dim) {
  AxisSplit s;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < dim) s.outer *= shape[i];
    else if (i == dim) s.r = shape[i];
    else s.inner *= shape[i];
  }
  return s;
}

}  // namespace loom::ops
