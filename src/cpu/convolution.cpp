// The CPU backend's convolution entries: im2col (unfold2d) into each image's
// own [C*KH*KW, OH*OW] column matrix, then one batched GEMM whose products
// share the weight and write straight into out's [O, OH*OW] planes (no
// product buffer, no copy back; a single [taps, N*OH*OW] GEMM with copies
// to and from NCHW measured 4-20% slower on omni-tiny's convolutions). The
// columns are kept for the backward (recomputing them instead made a CNN
// training step 16% slower for 13% less peak memory), which reads grad's
// planes in place:
// dW = sum over images of grad[n] . cols[n]^T, accumulated by one GEMM
// through the batch (gemm_batch_sum); dX = fold(W^T . grad[n]); db = grad
// summed over N, OH and OW.
// Floor: 2 N O C KH KW OH OW FLOPs forward, twice that backward.
// f32 and f64; halves are declined (the op widens them and composes).
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

struct ConvShape {
  int64_t n, c, o, taps, spatial;  // taps = C*KH*KW, spatial = OH*OW
};

ConvShape shape_of(const Tensor& x, const Tensor& weight, const Tensor& out_like) {
  return {x.size(0), x.size(1), weight.size(0), weight.size(1) * weight.size(2) * weight.size(3),
          out_like.size(2) * out_like.size(3)};
}

// Scratch like t: its dtype, and its device (an emulated device's memory is
// the host's, and the columns are handed back to the op).
Tensor scratch_like(const Tensor& t, const Shape& shape) {
  return empty(shape, TensorOptions(t.dtype()).with_device(t.device()));
}

// A matrix every image's product uses: [N, rows, cols] with batch stride 0.
Tensor shared_by_images(const Tensor& m, const ConvShape& s) {
  return make_view(m, {s.n, m.size(0), m.size(1)}, {0, m.stride(0), m.stride(1)}, m.offset());
}

// A contiguous [N, O, OH, OW] tensor as [N, O, spatial].
Tensor planes(const Tensor& t, const ConvShape& s) {
  return make_view(t, {s.n, s.o, s.spatial}, {s.o * s.spatial, s.spatial, 1}, t.offset());
}

// Each image's columns: [N, taps, spatial], contiguous.
Tensor columns(const Tensor& x, const ConvShape& s, const Window2d& w) {
  Tensor cols = scratch_like(x, {s.n, s.taps, s.spatial});
  unfold2d(x, cols, w);
  return cols;
}

bool takes(DType t) { return t == DType::f32 || t == DType::f64; }

}  // namespace

bool convolution(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const Window2d& w,
                 Tensor* kept) {
  if (!takes(x.dtype())) return false;
  const ConvShape s = shape_of(x, weight, out);
  const Tensor cols = columns(x, s, w);
  gemm(shared_by_images(weight.reshape({s.o, s.taps}), s), cols, planes(out, s));
  if (kept != nullptr) *kept = cols;
  if (bias.defined()) {
    dispatch_float(out.dtype(), "conv2d", [&]<class T>() {
      T* op = ptr<T>(out);
      const T* bp = ptr<T>(bias);
      parallel_for(0, s.n * s.o, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          T* plane = op + r * s.spatial;
          const T b = bp[r % s.o];
          for (int64_t i = 0; i < s.spatial; ++i) plane[i] += b;
        }
      });
    });
  }
  return true;
}

void convolution_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& kept,
                          const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Window2d& w) {
  const ConvShape s = shape_of(x, weight, grad);
  const Tensor g = planes(grad, s);
  if (grad_w.defined()) {
    const Tensor cols = kept.defined() ? kept : columns(x, s, w);
    gemm_batch_sum(g, cols.transpose(1, 2), grad_w.reshape({s.o, s.taps}));
  }
  if (grad_b.defined()) {
    // Over the images first (whole planes added lane-wise), then each
    // channel's plane: short planes make poor rows to reduce over N * O times.
    Tensor plane_sums = scratch_like(grad, {s.o, s.spatial});
    reduce(Reduce::sum, g, 1, s.n, s.o * s.spatial, plane_sums.reshape({1, s.o * s.spatial}));
    reduce(Reduce::sum, plane_sums, s.o, s.spatial, 1, grad_b.reshape({s.o, 1}));
  }
  if (grad_x.defined()) {
    Tensor grad_cols = scratch_like(grad, {s.n, s.taps, s.spatial});
    gemm(shared_by_images(weight.reshape({s.o, s.taps}).t(), s), g, grad_cols);
    fill(grad_x, 0.0);
    fold2d(grad_cols, grad_x, w);
  }
}

}  // namespace loom::cpu
