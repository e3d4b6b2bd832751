// copy: strided, dtype-converting copies (contiguous() of a view, casts).
//
// Most copies are runs both sides walk together (for_each_run). A copy whose
// destination and source walk different dims with unit stride (a transpose,
// [N, C, L] -> [N, L, C]) would read one element per cache line along every
// destination run; it moves square blocks instead, so the lines of both sides
// stay in cache while a block is copied.
#include <algorithm>
#include <array>
#include <vector>

#include "cpu/convert.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "kernels/transpose_dims.hpp"

namespace loom::cpu {

namespace {

// Side of the square blocks: 32 x 32 f32 is 4 KiB a side, well inside L1.
constexpr int64_t kBlock = 32;
// Dims shorter than this move as runs: a block would be mostly edge.
constexpr int64_t kMinBlockedDim = 8;
constexpr int64_t kMinPerPart = int64_t{1} << 15;

template <class S, class D>
void copy_runs(const S* sp, D* dp, const Shape& shape, const Strides& ds, const Strides& ss) {
  for_each_run_parallel<2>(shape, {&ds, &ss}, [&](auto off, int64_t n, auto st) {
    D* o = dp + off[0];
    const S* a = sp + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = convert<D>(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = convert<D>(a[i * st[1]]);
    }
  });
}

// The work items are (position of the other dims, block of dim b) pairs,
// split across the threads in order, so a batch of small transposes spreads
// as well as one large one; each item writes its own elements, and the
// result does not depend on the thread count.
template <class S, class D>
void copy_blocked(const S* sp, D* dp, const Shape& shape, const Strides& ds, const Strides& ss,
                  kernels::TransposeDims t) {
  const int64_t na = shape[t.a], nb = shape[t.b];
  const int64_t src_a = ss[t.a], dst_b = ds[t.b];
  // The other dims, innermost first, to decode an item's position.
  std::vector<int64_t> sizes;
  std::vector<std::array<int64_t, 2>> steps;
  int64_t positions = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (d == t.a || d == t.b || shape[d] == 1) continue;
    sizes.push_back(shape[d]);
    steps.push_back({ds[d], ss[d]});
    positions *= shape[d];
  }
  const int64_t blocks_b = (nb + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, kMinPerPart / (na * kBlock));
  parallel_for(0, positions * blocks_b, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      int64_t position = item / blocks_b, dst_off = 0, src_off = 0;
      for (size_t k = 0; k < sizes.size(); ++k) {
        const int64_t i = position % sizes[k];
        position /= sizes[k];
        dst_off += i * steps[k][0];
        src_off += i * steps[k][1];
      }
      D* o = dp + dst_off;
      const S* s = sp + src_off;
      const int64_t b0 = (item % blocks_b) * kBlock, b1 = std::min(nb, b0 + kBlock);
      for (int64_t a0 = 0; a0 < na; a0 += kBlock) {
        const int64_t a1 = std::min(na, a0 + kBlock);
        for (int64_t j = b0; j < b1; ++j)
          for (int64_t i = a0; i < a1; ++i) o[i + j * dst_b] = convert<D>(s[i * src_a + j]);
      }
    }
  });
}

}  // namespace

Tensor as_f32(const Tensor& t) {
  if (t.dtype() == DType::f32) return t;
  Tensor f = empty(t.shape(), DType::f32);
  copy(t, f);
  return f;
}

void copy(const Tensor& src, const Tensor& dst) {
  LOOM_CHECK(src.shape() == dst.shape(), "copy: source shape ", shape_str(src.shape()), " != destination shape ",
             shape_str(dst.shape()));
  dispatch_all(src.dtype(), [&]<class S>() {
    dispatch_all(dst.dtype(), [&]<class D>() {
      const S* sp = ptr<S>(src);
      D* dp = ptr<D>(dst);
      const Strides ds = dst.strides();
      if (const auto t = kernels::transpose_dims(dst.shape(), ds, src.strides(), kMinBlockedDim))
        copy_blocked(sp, dp, dst.shape(), ds, src.strides(), *t);
      else
        copy_runs(sp, dp, dst.shape(), ds, src.strides());
    });
  });
}

}  // namespace loom::cpu
