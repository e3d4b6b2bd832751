// Indexing (index_select, gather, scatter) and joining (cat, stack, split, chunk).
#include <numeric>

#include "loom/ops/creation.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  ops::check_integer_index(index, "index_select", "index");
  LOOM_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", shape_str(index.shape()));
  LOOM_CHECK(x.dim() > 0, "index_select: cannot index a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Tensor idx = index.dim() == 0 ? index.reshape({1}) : index;
  ops::check_index_range(idx, x.size(d), "index_select");
  Shape shape = x.shape();
  shape[d] = idx.numel();
  Tensor out = empty(shape, TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).index_select(x, d, idx, out);
  return ops::record("index_select", out, {x}, {idx}, [xs = x.shape(), d](const BackwardContext& ctx, const Tensor& g) {
    Tensor grad = zeros(xs, TensorOptions(g.dtype()).with_device(g.device()));
    ops::kernels_for(g).index_add(g, d, ctx.saved(0), grad);
    return std::vector<Tensor>{grad};
  });
}

namespace {

// gather/scatter shape rules: index has x's rank and fits inside it off `dim`.
int64_t check_gather_shapes(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  check_defined(x, op, "x");
  ops::check_integer_index(index, op, "index");
  LOOM_CHECK(index.dim() == x.dim(), op, ": index ", shape_str(index.shape()), " must have the rank of input ",
             shape_str(x.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), op);
  for (int64_t i = 0; i < x.dim(); ++i)
    LOOM_CHECK(i == d || index.size(i) <= x.size(i), op, ": index ", shape_str(index.shape()),
               " is larger than input ", shape_str(x.shape()), " in dim ", i);
  ops::check_index_range(index, x.size(d), op);
  return d;
}

Tensor scatter_impl(const char* op, const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src, bool add) {
  const int64_t d = check_gather_shapes(x, dim, index, op);
  check_defined(src, op, "src");
  ops::check_same_dtype(x, src, op);
  LOOM_CHECK(src.shape() == index.shape(), op, ": src ", shape_str(src.shape()), " must have the shape of index ",
             shape_str(index.shape()));
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).copy(x, out);
  ops::kernels_for(x).scatter(out, d, index, src, add);
  return ops::record(op, out, {x, src}, {index}, [d, add](const BackwardContext& ctx, const Tensor& g) {
    Tensor idx = ctx.saved(0);
    Tensor gx;
    if (ctx.needs_grad(0)) {
      // scatter overwrote those positions, so x gets no gradient there.
      gx = add ? g : scatter(g, d, idx, zeros(idx.shape(), TensorOptions(g.dtype()).with_device(g.device())));
    }
    Tensor gs = ctx.needs_grad(1) ? gather(g, d, idx) : Tensor();
    return std::vector<Tensor>{gx, gs};
  });
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = check_gather_shapes(x, dim, index, "gather");
  Tensor out = empty(index.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  ops::kernels_for(x).gather(x, d, index, out);
  return ops::record("gather", out, {x}, {index}, [xs = x.shape(), d](const BackwardContext& ctx, const Tensor& g) {
    Tensor grad = zeros(xs, TensorOptions(g.dtype()).with_device(g.device()));
    return std::vector<Tensor>{scatter_add(grad, d, ctx.saved(0), g)};
  });
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_impl("scatter", x, dim, index, src, false);
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_impl("scatter_add", x, dim, index, src, true);
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  LOOM_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  check_defined(first, "cat", "tensors[0]");
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[d] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_defined(t, "cat", "tensors[i]");
    ops::check_same_dtype(first, t, "cat");
    ops::check_same_device(first, t, "cat");
    LOOM_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", shape_str(t.shape()), ", tensor 0 has ",
               shape_str(first.shape()));
    for (int64_t k = 0; k < t.dim(); ++k)
      LOOM_CHECK(k == d || t.size(k) == first.size(k), "cat: tensor ", i, " has shape ", shape_str(t.shape()),
                 ", tensor 0 has ", shape_str(first.shape()), " (they may differ only in dim ", d, ")");
    sizes.push_back(t.size(d));
    shape[d] += t.size(d);
  }
  Tensor out = empty(shape, TensorOptions(first.dtype()).with_device(first.device()));
  int64_t offset = 0;
  {
    NoGradGuard guard;
    for (size_t i = 0; i < tensors.size(); ++i) {
      ops::kernels_for(out).copy(tensors[i], out.narrow(d, offset, sizes[i]));
      offset += sizes[i];
    }
  }
  return ops::record("cat", out, tensors, {}, [d, sizes](const BackwardContext&, const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t off = 0;
    for (int64_t s : sizes) {
      grads.push_back(g.narrow(d, off, s));
      off += s;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  LOOM_CHECK(!tensors.empty(), "stack: expected at least one tensor");
  check_defined(tensors[0], "stack", "tensors[0]");
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_defined(tensors[i], "stack", "tensors[i]");
    LOOM_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ",
               shape_str(tensors[i].shape()), ", tensor 0 has ", shape_str(tensors[0].shape()));
    parts.push_back(unsqueeze(tensors[i], d));
  }
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split", "x");
  LOOM_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < x.size(d); start += split_size)
    parts.push_back(narrow(x, d, start, std::min(split_size, x.size(d) - start)));
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk", "x");
  LOOM_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t size = std::max<int64_t>(1, (x.size(d) + chunks - 1) / chunks);
  return split(x, size, d);
}

}  // namespace loom
