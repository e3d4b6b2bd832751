// LayerNorm and RMSNorm over the rows of a contiguous [rows, cols] tensor.
// Forward saves mean and rstd per row; backward uses them:
//   xhat = (x - mean) * rstd,  y = xhat * w + b
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))   (LayerNorm)
//   dx = rstd * (dxhat - xhat * mean(dxhat * xhat))                 (RMSNorm)
#include <cmath>

#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

void norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const Tensor& mean,
          const Tensor& rstd, const NormShape& s) {
  dispatch_float(x.dtype(), s.rms ? "rms_norm" : "layer_norm", [&]<class T>() {
    const T* xp = ptr<T>(x);
    const T* wp = weight.defined() ? ptr<T>(weight) : nullptr;
    const T* bp = bias.defined() ? ptr<T>(bias) : nullptr;
    T* op = ptr<T>(out);
    parallel_for(0, s.rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const T* row = xp + i * s.cols;
      double mu = 0;
      if (!s.rms) {
        for (int64_t j = 0; j < s.cols; ++j) mu += row[j];
        mu /= static_cast<double>(s.cols);
      }
      double ss = 0;
      for (int64_t j = 0; j < s.cols; ++j) {
        const double d = row[j] - mu;
        ss += d * d;
      }
      const double r = 1.0 / std::sqrt(ss / static_cast<double>(s.cols) + s.eps);
      ptr<T>(mean)[i] = static_cast<T>(mu);
      ptr<T>(rstd)[i] = static_cast<T>(r);
      T* o = op + i * s.cols;
      for (int64_t j = 0; j < s.cols; ++j) {
        T v = static_cast<T>((row[j] - mu) * r);
        if (wp) v *= wp[j];
        if (bp) v += bp[j];
        o[j] = v;
      }
    }
    });
  });
}

void norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                   const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const NormShape& s) {
  dispatch_float(x.dtype(), s.rms ? "rms_norm backward" : "layer_norm backward", [&]<class T>() {
    const T* gp = ptr<T>(grad);
    const T* xp = ptr<T>(x);
    const T* wp = weight.defined() ? ptr<T>(weight) : nullptr;
    std::vector<double> gw(grad_w.defined() ? s.cols : 0, 0.0), gb(grad_b.defined() ? s.cols : 0, 0.0);
    std::vector<double> dxhat(static_cast<size_t>(s.cols)), xhat(static_cast<size_t>(s.cols));
    for (int64_t i = 0; i < s.rows; ++i) {
      const T* g = gp + i * s.cols;
      const T* row = xp + i * s.cols;
      const double mu = ptr<T>(mean)[i], r = ptr<T>(rstd)[i];
      double sum_d = 0, sum_dx = 0;
      for (int64_t j = 0; j < s.cols; ++j) {
        xhat[j] = (row[j] - mu) * r;
        dxhat[j] = wp ? g[j] * static_cast<double>(wp[j]) : g[j];
        sum_d += dxhat[j];
        sum_dx += dxhat[j] * xhat[j];
        if (!gw.empty()) gw[j] += g[j] * xhat[j];
        if (!gb.empty()) gb[j] += g[j];
      }
      const double mean_d = s.rms ? 0.0 : sum_d / static_cast<double>(s.cols);
      const double mean_dx = sum_dx / static_cast<double>(s.cols);
      if (grad_x.defined()) {
        T* dx = ptr<T>(grad_x) + i * s.cols;
        for (int64_t j = 0; j < s.cols; ++j) dx[j] = static_cast<T>(r * (dxhat[j] - mean_d - xhat[j] * mean_dx));
      }
    }
    for (size_t j = 0; j < gw.size(); ++j) ptr<T>(grad_w)[j] = static_cast<T>(gw[j]);
    for (size_t j = 0; j < gb.size(); ++j) ptr<T>(grad_b)[j] = static_cast<T>(gb[j]);
  });
}

}  // namespace loom::cpu
