// View ops: new shape/strides/offset over the same storage, and their
// backward rules (the inverse rearrangement of the gradient).
#include "loom/ops/shape.hpp"

#include <algorithm>
#include <numeric>
#include <optional>

#include "loom/ops/creation.hpp"
#include "loom/ops/reduction.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

namespace {

Shape infer_shape(const Shape& requested, int64_t total, const char* op, const Shape& from) {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LOOM_CHECK(infer == -1, op, ": only one dim can be -1 in ", shape_str(requested));
      infer = static_cast<int64_t>(i);
    } else {
      LOOM_CHECK(shape[i] >= 0, op, ": negative size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    LOOM_CHECK(known != 0 && total % known == 0, op, ": shape ", shape_str(requested), " is invalid for input of shape ",
               shape_str(from));
    shape[infer] = total / known;
  }
  LOOM_CHECK(numel(shape) == total, op, ": shape ", shape_str(requested), " is invalid for input of shape ",
             shape_str(from), " (", total, " elements)");
  return shape;
}

// Strides that let `new_shape` view memory laid out as (shape, strides), if any
// (the chunk-matching rule PyTorch uses).
std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape) {
  if (numel(shape) == 0 || shape.empty()) return contiguous_strides(new_shape);
  Strides out(new_shape.size());
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// A view op's output: the same storage, recorded with a backward rule.
Tensor view_of(const char* op, const Tensor& x, Shape shape, Strides strides, int64_t offset,
               autograd::BackwardFn backward) {
  return ops::record(op, make_view(x, std::move(shape), std::move(strides), offset), {x}, {}, std::move(backward));
}

}  // namespace

Tensor view(const Tensor& x, const Shape& requested) {
  check_defined(x, "view", "x");
  const Shape shape = infer_shape(requested, x.numel(), "view", x.shape());
  auto strides = view_strides(x.shape(), x.strides(), shape);
  LOOM_CHECK(strides.has_value(), "view: shape ", shape_str(shape), " is not compatible with the strides of input ",
             shape_str(x.shape()), "; use reshape()");
  return view_of("view", x, shape, *strides, x.offset(), [xs = x.shape()](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{reshape(g, xs)};
  });
}

Tensor reshape(const Tensor& x, const Shape& requested) {
  check_defined(x, "reshape", "x");
  const Shape shape = infer_shape(requested, x.numel(), "reshape", x.shape());
  if (view_strides(x.shape(), x.strides(), shape)) return view(x, shape);
  return view(contiguous(x), shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined(x, "permute", "x");
  LOOM_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(), " dims given for a tensor of shape ",
             shape_str(x.shape()));
  std::vector<int64_t> perm(dims.size()), inverse(dims.size());
  std::vector<bool> used(dims.size(), false);
  Shape shape(dims.size());
  Strides strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    perm[i] = wrap_dim(dims[i], x.dim(), "permute");
    LOOM_CHECK(!used[perm[i]], "permute: dim ", dims[i], " repeated");
    used[perm[i]] = true;
    inverse[perm[i]] = static_cast<int64_t>(i);
    shape[i] = x.size(perm[i]);
    strides[i] = x.stride(perm[i]);
  }
  return view_of("permute", x, shape, strides, x.offset(), [inverse](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined(x, "transpose", "x");
  std::vector<int64_t> dims(static_cast<size_t>(x.dim()));
  std::iota(dims.begin(), dims.end(), 0);
  if (x.dim() == 0) return x;
  std::swap(dims[wrap_dim(d0, x.dim(), "transpose")], dims[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined(x, "slice", "x");
  LOOM_CHECK(x.dim() > 0, "slice: cannot slice a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "slice");
  LOOM_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = x.size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  return view_of("slice", x, shape, strides, x.offset() + start * x.stride(d),
                 [xs = x.shape(), d, start, end, step](const BackwardContext&, const Tensor& g) {
                   Tensor grad = zeros(xs, TensorOptions(g.dtype()).with_device(g.device()));
                   grad.slice(d, start, end, step).copy_(g);
                   return std::vector<Tensor>{grad};
                 });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check_defined(x, "narrow", "x");
  const int64_t d = wrap_dim(dim, x.dim(), "narrow");
  LOOM_CHECK(start >= 0 && length >= 0 && start + length <= x.size(d), "narrow: range [", start, ", ", start + length,
             ") out of bounds for dim ", d, " of size ", x.size(d), " (shape ", shape_str(x.shape()), ")");
  return slice(x, d, start, start + length, 1);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check_defined(x, "select", "x");
  const int64_t d = wrap_dim(dim, x.dim(), "select");
  const int64_t i = index < 0 ? index + x.size(d) : index;
  LOOM_CHECK(i >= 0 && i < x.size(d), "select: index ", index, " out of range for dim ", d, " of size ", x.size(d));
  return squeeze(narrow(x, d, i, 1), d);
}

Tensor expand(const Tensor& x, const Shape& requested) {
  check_defined(x, "expand", "x");
  LOOM_CHECK(requested.size() >= static_cast<size_t>(x.dim()), "expand: cannot expand ", shape_str(x.shape()), " to ",
             shape_str(requested), " (fewer dims)");
  Shape shape = requested;
  const size_t lead = requested.size() - static_cast<size_t>(x.dim());
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t have = i < lead ? 1 : x.shape()[i - lead];
    if (shape[i] == -1) {
      LOOM_CHECK(i >= lead, "expand: -1 not allowed for a new leading dim in ", shape_str(requested));
      shape[i] = have;
    }
    LOOM_CHECK(have == shape[i] || have == 1, "expand: cannot expand ", shape_str(x.shape()), " to ",
               shape_str(requested), " (dim ", i, ": ", have, " vs ", shape[i], ")");
  }
  if (shape == x.shape()) return x;
  Tensor v = ops::broadcast_view(x, shape);
  return view_of("expand", x, v.shape(), v.strides(), v.offset(), [xs = x.shape()](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, xs)};
  });
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined(x, "unsqueeze", "x");
  const int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  Strides strides = x.strides();
  const int64_t st = d < x.dim() ? x.stride(d) * x.size(d) : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return view_of("unsqueeze", x, shape, strides, x.offset(), [d](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{squeeze(g, d)};
  });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_defined(x, "squeeze", "x");
  if (x.dim() == 0) return x;
  const int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  if (x.size(d) != 1) return x;
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return view_of("squeeze", x, shape, strides, x.offset(), [d](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{unsqueeze(g, d)};
  });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  check_defined(x, "flatten", "x");
  if (x.dim() == 0) return reshape(x, {1});
  const int64_t s = wrap_dim(start_dim, x.dim(), "flatten"), e = wrap_dim(end_dim, x.dim(), "flatten");
  LOOM_CHECK(s <= e, "flatten: start_dim ", start_dim, " after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) merged *= x.size(i);
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor clone(const Tensor& x) {
  check_defined(x, "clone", "x");
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).copy(x, out);
  return ops::record("clone", out, {x}, {}, [](const BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{g};
  });
}

Tensor contiguous(const Tensor& x) {
  check_defined(x, "contiguous", "x");
  return x.is_contiguous() ? x : clone(x);
}

}  // namespace loom
