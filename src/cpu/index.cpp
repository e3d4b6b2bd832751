// Indexing kernels: index_select / index_add along a dim, gather / scatter.
// Index values were range-checked by the op; kernels trust them.
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"

namespace loom::cpu {

namespace {

int64_t index_value(const Tensor& index, int64_t flat_offset) {
  return index.dtype() == DType::i64 ? ptr<int64_t>(index)[flat_offset]
                                     : static_cast<int64_t>(ptr<int32_t>(index)[flat_offset]);
}

// Offsets (in elements) of every position of `shape` under `strides`, row-major.
std::vector<int64_t> offsets_of(const Shape& shape, const Strides& strides) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(numel(shape)));
  for_each_run<1>(shape, {&strides}, [&](auto off, int64_t n, auto st) {
    for (int64_t i = 0; i < n; ++i) out.push_back(off[0] + i * st[0]);
  });
  if (numel(shape) == 1 && out.empty()) out.push_back(0);
  return out;
}

// Shape/strides with `dim` removed.
Shape drop(const Shape& s, int64_t dim) {
  Shape r = s;
  r.erase(r.begin() + dim);
  return r;
}

}  // namespace

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  // out.select(dim, j) = x.select(dim, index[j]) for every j.
  const Shape rest = drop(x.shape(), dim);
  const auto xo = offsets_of(rest, drop(x.strides(), dim));
  const auto oo = offsets_of(rest, drop(out.strides(), dim));
  dispatch_all(x.dtype(), [&]<class T>() {
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    for (int64_t j = 0; j < index.numel(); ++j) {
      const int64_t src = index_value(index, j * index.stride(0));
      const T* s = xp + src * x.stride(dim);
      T* d = op + j * out.stride(dim);
      for (size_t e = 0; e < xo.size(); ++e) d[oo[e]] = s[xo[e]];
    }
  });
}

void index_add(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x) {
  const Shape rest = drop(grad_x.shape(), dim);
  const auto go = offsets_of(rest, drop(grad_out.strides(), dim));
  const auto xo = offsets_of(rest, drop(grad_x.strides(), dim));
  dispatch_float(grad_x.dtype(), "index_add", [&]<class T>() {
    const T* gp = ptr<T>(grad_out);
    T* xp = ptr<T>(grad_x);
    for (int64_t j = 0; j < index.numel(); ++j) {
      const int64_t dst = index_value(index, j * index.stride(0));
      const T* s = gp + j * grad_out.stride(dim);
      T* d = xp + dst * grad_x.stride(dim);
      for (size_t e = 0; e < xo.size(); ++e) d[xo[e]] += s[go[e]];
    }
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  // out[p] = x[p with p[dim] replaced by index[p]]
  const auto io = offsets_of(index.shape(), index.strides());
  const auto oo = offsets_of(out.shape(), out.strides());
  Strides x_no_dim = x.strides();
  x_no_dim[dim] = 0;
  const auto xo = offsets_of(index.shape(), x_no_dim);
  dispatch_all(x.dtype(), [&]<class T>() {
    const T* xp = ptr<T>(x);
    T* op = ptr<T>(out);
    for (size_t e = 0; e < io.size(); ++e) op[oo[e]] = xp[xo[e] + index_value(index, io[e]) * x.stride(dim)];
  });
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add) {
  const auto io = offsets_of(index.shape(), index.strides());
  const auto so = offsets_of(index.shape(), src.strides());
  Strides out_no_dim = out.strides();
  out_no_dim[dim] = 0;
  const auto oo = offsets_of(index.shape(), out_no_dim);
  dispatch_all(out.dtype(), [&]<class T>() {
    T* op = ptr<T>(out);
    const T* sp = ptr<T>(src);
    for (size_t e = 0; e < io.size(); ++e) {
      T& slot = op[oo[e] + index_value(index, io[e]) * out.stride(dim)];
      if constexpr (std::is_same_v<T, bool>) {
        slot = add ? (slot || sp[so[e]]) : sp[so[e]];
      } else {
        slot = add ? T(static_cast<compute_t<T>>(slot) + static_cast<compute_t<T>>(sp[so[e]])) : sp[so[e]];
      }
    }
  });
}

}  // namespace loom::cpu
