// LayerNorm and RMSNorm over the rows of a contiguous [rows, cols] tensor,
// optionally fused with the residual add before them (h = x + residual, the
// pre-norm block's stream, is written out and normalised while in L1).
// Forward saves mean and rstd per row; backward uses them:
//   xhat = (h - mean) * rstd,  y = xhat * w + b
//   dh = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) + g_h   (LayerNorm)
//   dh = rstd * (dxhat - xhat * mean(dxhat * xhat)) + g_h                 (RMSNorm)
// where g_h is the gradient that reached h directly (fused only).
// A row is read from memory once and revisited from L1: the statistics and
// the backward's two sums reduce in lanes (vec_row.hpp), so the loops
// vectorise. Rows run in parallel; the weight and bias gradients sum over
// fixed blocks of rows (partials in T, combined in double in block order), so
// the result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_row.hpp"
#include "kernels/norm_dtypes.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols)); }

// Every operand in x's dtype.
void norm_same(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
               const Tensor& sum, const Tensor& mean, const Tensor& rstd, const NormShape& s) {
  dispatch_float(x.dtype(), s.rms ? "rms_norm" : "layer_norm", [&]<class T>() {
    const T* xp = ptr<T>(x);
    const T* rp = residual.defined() ? ptr<T>(residual) : nullptr;
    T* sp = residual.defined() ? ptr<T>(sum) : nullptr;
    const T* wp = weight.defined() ? ptr<T>(weight) : nullptr;
    const T* bp = bias.defined() ? ptr<T>(bias) : nullptr;
    T* op = ptr<T>(out);
    const int64_t n = s.cols;
    parallel_for(0, s.rows, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = xp + i * n;
        if (rp) {
          T* h = sp + i * n;
          const T* res = rp + i * n;
          for (int64_t j = 0; j < n; ++j) h[j] = row[j] + res[j];
          row = h;
        }
        const T mu = s.rms ? T(0) : static_cast<T>(lane_sum<T>(n, [&](int64_t j) { return row[j]; }) / n);
        const double ss = lane_sum<T>(n, [&](int64_t j) {
          const T d = row[j] - mu;
          return d * d;
        });
        const T r = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(n) + s.eps));
        ptr<T>(mean)[i] = mu;
        ptr<T>(rstd)[i] = r;
        T* o = op + i * n;
        if (wp && bp)
          for (int64_t j = 0; j < n; ++j) o[j] = (row[j] - mu) * r * wp[j] + bp[j];
        else if (wp)
          for (int64_t j = 0; j < n; ++j) o[j] = (row[j] - mu) * r * wp[j];
        else
          for (int64_t j = 0; j < n; ++j) o[j] = (row[j] - mu) * r + (bp ? bp[j] : T(0));
      }
    });
  });
}

void norm_backward_same(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_w,
                        const Tensor& grad_b, const NormShape& s) {
  dispatch_float(x.dtype(), s.rms ? "rms_norm backward" : "layer_norm backward", [&]<class T>() {
    const T* gp = ptr<T>(grad);
    const T* gsp = grad_sum.defined() && grad_x.defined() ? ptr<T>(grad_sum) : nullptr;
    const T* xp = ptr<T>(x);
    const int64_t n = s.cols;
    // The row loop runs without conditions: a missing weight reads ones, and
    // unwanted gradients go to scratch that is then dropped.
    const std::vector<T> ones(weight.defined() ? 0 : n, T(1));
    const T* wp = weight.defined() ? ptr<T>(weight) : ones.data();
    // Fixed blocks of rows, independent of the thread count; each block owns a
    // row of partial weight and bias gradients.
    constexpr int64_t kMaxBlocks = 64;
    const int64_t blocks = std::min(s.rows, kMaxBlocks);
    const int64_t per_block = blocks == 0 ? 0 : (s.rows + blocks - 1) / blocks;
    std::vector<T> pw(blocks * n, T(0)), pb(blocks * n, T(0));
    parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      std::vector<T> scratch(grad_x.defined() ? 0 : n);
      for (int64_t b = b0; b < b1; ++b) {
        T* gw = pw.data() + b * n;
        T* gb = pb.data() + b * n;
        for (int64_t i = b * per_block; i < std::min(s.rows, (b + 1) * per_block); ++i) {
          const T* g = gp + i * n;
          const T* row = xp + i * n;
          T* dx = grad_x.defined() ? ptr<T>(grad_x) + i * n : scratch.data();
          const T mu = ptr<T>(mean)[i], r = ptr<T>(rstd)[i];
          auto xhat = [&](int64_t j) { return (row[j] - mu) * r; };
          const auto [sum_d, sum_dx] = lane_sum2<T>(
              n, [&](int64_t j) { return g[j] * wp[j]; }, [&](int64_t j) { return g[j] * wp[j] * xhat(j); });
          const T mean_d = s.rms ? T(0) : static_cast<T>(sum_d / static_cast<double>(n));
          const T mean_dx = static_cast<T>(sum_dx / static_cast<double>(n));
          // Two loops (the row is in L1): one loop with three outputs needs
          // more runtime alias checks than GCC versions a loop for.
          if (gsp) {
            const T* gs = gsp + i * n;
            for (int64_t j = 0; j < n; ++j) dx[j] = r * (g[j] * wp[j] - mean_d - xhat(j) * mean_dx) + gs[j];
          } else {
            for (int64_t j = 0; j < n; ++j) dx[j] = r * (g[j] * wp[j] - mean_d - xhat(j) * mean_dx);
          }
          for (int64_t j = 0; j < n; ++j) {
            gw[j] += g[j] * xhat(j);
            gb[j] += g[j];
          }
        }
      }
    });
    auto combine = [&](const std::vector<T>& partial, const Tensor& dst) {
      std::vector<double> acc(static_cast<size_t>(n), 0.0);
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t j = 0; j < n; ++j) acc[j] += partial[b * n + j];
      T* d = ptr<T>(dst);
      for (int64_t j = 0; j < n; ++j) d[j] = static_cast<T>(acc[j]);
    };
    if (grad_w.defined()) combine(pw, grad_w);
    if (grad_b.defined()) combine(pb, grad_b);
  });
}

}  // namespace

// Half x, out, grad and grad_x_half (autocast's fused residual norm) are
// widened and rounded around the kernels above.
void norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
          const Tensor& sum, const Tensor& mean, const Tensor& rstd, const NormShape& s) {
  kernels::norm_in_one_dtype(x, residual, weight, bias, out, sum, mean, rstd, s, norm_same);
}

void norm_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                   const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                   const Tensor& grad_w, const Tensor& grad_b, const NormShape& s) {
  kernels::norm_backward_in_one_dtype(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_x_half, grad_w, grad_b, s,
                                      norm_backward_same);
}

}  // namespace loom::cpu
