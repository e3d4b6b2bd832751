// Pointwise kernels: fill, unary ops and their derivatives,
// binary ops, comparisons and where. Halves are computed in float. Every
// kernel splits its output across the thread pool (for_each_run_parallel);
// unit-stride runs are plain loops the compiler vectorises, with exp, tanh
// and erf from vec_math.hpp for float (libm for double).
#include <cmath>
#include <type_traits>

#include "cpu/convert.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_math.hpp"

namespace loom::cpu {

namespace {

template <class T>
constexpr bool is_float_v = std::is_floating_point_v<T> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

template <class T, class F>
void map_unary(const Tensor& x, const Tensor& out, F f) {
  const T* xp = ptr<T>(x);
  T* op = ptr<T>(out);
  const Strides out_strides = out.strides();
  for_each_run_parallel<2>(out.shape(), {&out_strides, &x.strides()}, [&](auto off, int64_t n, auto st) {
    T* o = op + off[0];
    const T* a = xp + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = T(f(static_cast<compute_t<T>>(a[i])));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = T(f(static_cast<compute_t<T>>(a[i * st[1]])));
    }
  });
}

template <class T, class F>
void map_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  const T* ap = ptr<T>(a);
  const T* bp = ptr<T>(b);
  T* op = ptr<T>(out);
  const Strides os = out.strides();
  for_each_run_parallel<3>(out.shape(), {&os, &a.strides(), &b.strides()}, [&](auto off, int64_t n, auto st) {
    T* o = op + off[0];
    const T* x = ap + off[1];
    const T* y = bp + off[2];
    using C = compute_t<T>;
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = T(f(static_cast<C>(x[i]), static_cast<C>(y[i])));
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const C yv = static_cast<C>(y[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = T(f(static_cast<C>(x[i]), yv));
    } else {
      for (int64_t i = 0; i < n; ++i)
        o[i * st[0]] = T(f(static_cast<C>(x[i * st[1]]), static_cast<C>(y[i * st[2]])));
    }
  });
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kGeluCubic = 0.044715;

template <class C>
C sigmoid(C v) {
  return C(1) / (C(1) + math<C>::exp(-v));
}

// gelu(x) = x * Phi(x), Phi the standard normal CDF; the tanh form takes
// Phi(x) ~ 0.5 * (1 + tanh(u)) = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3),
// which has no cancellation for negative x.
template <class C>
C gelu_tanh_u(C v) {
  return C(kSqrt2OverPi) * (v + C(kGeluCubic) * v * v * v);
}
// Phi(x); sets gauss = exp(-x^2 / 2), which erf computes anyway.
template <class C>
C normal_cdf(C v, C& gauss) {
  return C(0.5) * (C(1) + math<C>::erf_gauss(v * C(kInvSqrt2), gauss));
}

}  // namespace

void fill(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), [&]<class T>() {
    const T v = convert<T>(value);
    T* dp = ptr<T>(dst);
    const Strides ds = dst.strides();
    for_each_run_parallel<1>(dst.shape(), {&ds}, [&](auto off, int64_t n, auto st) {
      for (int64_t i = 0; i < n; ++i) dp[off[0] + i * st[0]] = v;
    });
  });
}

void unary(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  dispatch_all(x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, uint8_t>) {
      LOOM_FAIL(kernels::op_name(op), ": not defined for dtype ", dtype_name(x.dtype()));
    } else {
      if constexpr (!is_float_v<T>) {
        LOOM_CHECK(op == Unary::neg || op == Unary::abs || op == Unary::relu || op == Unary::clamp, kernels::op_name(op),
                   ": expected a floating tensor, got ", dtype_name(x.dtype()));
      }
      switch (op) {
        case Unary::neg: return map_unary<T>(x, out, [](C v) { return -v; });
        case Unary::abs: return map_unary<T>(x, out, [](C v) { return v < 0 ? -v : v; });
        case Unary::relu: return map_unary<T>(x, out, [](C v) { return v > 0 ? v : C(0); });
        case Unary::clamp: {
          const C lo = static_cast<C>(p.lo), hi = static_cast<C>(p.hi);
          const bool has_lo = p.has_lo, has_hi = p.has_hi;
          return map_unary<T>(x, out, [=](C v) {
            if (has_lo && v < lo) v = lo;
            if (has_hi && v > hi) v = hi;
            return v;
          });
        }
        default: break;
      }
      if constexpr (is_float_v<T>) {
        switch (op) {
          case Unary::exp: return map_unary<T>(x, out, [](C v) { return math<C>::exp(v); });
          case Unary::log: return map_unary<T>(x, out, [](C v) { return std::log(v); });
          case Unary::sqrt: return map_unary<T>(x, out, [](C v) { return std::sqrt(v); });
          case Unary::rsqrt: return map_unary<T>(x, out, [](C v) { return C(1) / std::sqrt(v); });
          case Unary::tanh: return map_unary<T>(x, out, [](C v) { return math<C>::tanh(v); });
          case Unary::sigmoid: return map_unary<T>(x, out, [](C v) { return sigmoid(v); });
          case Unary::gelu_erf:
            return map_unary<T>(x, out, [](C v) {
              C gauss;
              return v * normal_cdf(v, gauss);
            });
          case Unary::gelu_tanh: return map_unary<T>(x, out, [](C v) { return v * sigmoid(C(2) * gelu_tanh_u(v)); });
          case Unary::silu: return map_unary<T>(x, out, [](C v) { return v * sigmoid(v); });
          case Unary::pow_scalar: {
            const C e = static_cast<C>(p.exponent);
            return map_unary<T>(x, out, [=](C v) { return std::pow(v, e); });
          }
          default: break;
        }
      }
    }
  });
}

void unary_backward(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                    const UnaryParams& p) {
  dispatch_all(x.dtype(), [&]<class T>() {
    if constexpr (!is_float_v<T>) {
      LOOM_FAIL(kernels::op_name(op), " backward: expected a floating tensor, got ", dtype_name(x.dtype()));
    } else {
      using C = compute_t<T>;
      // The derivative as a function of (x, y); y may be x itself when unused.
      auto run = [&](auto deriv) {
        const T* gp = ptr<T>(grad);
        const T* xp = ptr<T>(x);
        const T* yp = ptr<T>(y);
        T* op_ = ptr<T>(grad_in);
        const Strides gs = grad_in.strides();
        for_each_run_parallel<4>(grad_in.shape(), {&gs, &grad.strides(), &x.strides(), &y.strides()},
                                 [&](auto off, int64_t n, auto st) {
                                   T* o = op_ + off[0];
                                   const T* g = gp + off[1];
                                   const T* xv = xp + off[2];
                                   const T* yv = yp + off[3];
                                   auto at = [](const T* a, int64_t i) { return static_cast<C>(a[i]); };
                                   if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
                                     for (int64_t i = 0; i < n; ++i) o[i] = T(at(g, i) * deriv(at(xv, i), at(yv, i)));
                                   } else {
                                     for (int64_t i = 0; i < n; ++i)
                                       o[i * st[0]] =
                                           T(at(g, i * st[1]) * deriv(at(xv, i * st[2]), at(yv, i * st[3])));
                                   }
                                 });
      };
      switch (op) {
        case Unary::neg: return run([](C, C) { return C(-1); });
        case Unary::exp: return run([](C, C yv) { return yv; });
        case Unary::log: return run([](C xv, C) { return C(1) / xv; });
        case Unary::sqrt: return run([](C, C yv) { return C(0.5) / yv; });
        case Unary::rsqrt: return run([](C, C yv) { return C(-0.5) * yv * yv * yv; });
        case Unary::abs: return run([](C xv, C) { return xv > 0 ? C(1) : (xv < 0 ? C(-1) : C(0)); });
        case Unary::tanh: return run([](C, C yv) { return C(1) - yv * yv; });
        case Unary::sigmoid: return run([](C, C yv) { return yv * (C(1) - yv); });
        case Unary::relu: return run([](C xv, C) { return xv > 0 ? C(1) : C(0); });
        case Unary::gelu_erf:
          return run([](C xv, C) {
            C gauss;
            const C cdf = normal_cdf(xv, gauss);
            return cdf + xv * C(kInvSqrt2Pi) * gauss;
          });
        case Unary::gelu_tanh:
          return run([](C xv, C) {
            const C s = sigmoid(C(2) * gelu_tanh_u(xv));  // 0.5 (1 + tanh u); 0.5 (1 - tanh^2 u) = 2 s (1 - s)
            const C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * xv * xv);
            return s + C(2) * xv * s * (C(1) - s) * du;
          });
        case Unary::silu:
          return run([](C xv, C) {
            const C s = sigmoid(xv);
            return s * (C(1) + xv * (C(1) - s));
          });
        case Unary::clamp: {
          const C lo = static_cast<C>(p.lo), hi = static_cast<C>(p.hi);
          const bool has_lo = p.has_lo, has_hi = p.has_hi;
          return run([=](C xv, C) { return ((has_lo && xv < lo) || (has_hi && xv > hi)) ? C(0) : C(1); });
        }
        case Unary::pow_scalar: {
          const C e = static_cast<C>(p.exponent);
          return run([=](C xv, C) { return e == C(0) ? C(0) : e * std::pow(xv, e - C(1)); });
        }
      }
    }
  });
}

void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all(a.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    if constexpr (std::is_same_v<T, bool>) {
      LOOM_FAIL("arithmetic on bool tensors is not defined");
    } else {
      switch (op) {
        case Binary::add: return map_binary<T>(a, b, out, [](C x, C y) { return x + y; });
        case Binary::sub: return map_binary<T>(a, b, out, [](C x, C y) { return x - y; });
        case Binary::mul: return map_binary<T>(a, b, out, [](C x, C y) { return x * y; });
        case Binary::maximum: return map_binary<T>(a, b, out, [](C x, C y) { return x > y || x != x ? x : y; });
        case Binary::minimum: return map_binary<T>(a, b, out, [](C x, C y) { return x < y || x != x ? x : y; });
        default: break;
      }
      if constexpr (is_float_v<T>) {
        switch (op) {
          case Binary::div: return map_binary<T>(a, b, out, [](C x, C y) { return x / y; });
          case Binary::pow: return map_binary<T>(a, b, out, [](C x, C y) { return std::pow(x, y); });
          default: break;
        }
      } else {
        LOOM_FAIL(op == Binary::div ? "div" : "pow", ": expected floating tensors, got ", dtype_name(a.dtype()));
      }
    }
  });
}

void compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all(a.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    const T* ap = ptr<T>(a);
    const T* bp = ptr<T>(b);
    bool* op_ = ptr<bool>(out);
    const Strides os = out.strides();
    auto run = [&](auto pred) {
      for_each_run_parallel<3>(out.shape(), {&os, &a.strides(), &b.strides()}, [&](auto off, int64_t n, auto st) {
        for (int64_t i = 0; i < n; ++i)
          op_[off[0] + i * st[0]] = pred(static_cast<C>(ap[off[1] + i * st[1]]), static_cast<C>(bp[off[2] + i * st[2]]));
      });
    };
    switch (op) {
      case Compare::eq: return run([](C x, C y) { return x == y; });
      case Compare::ne: return run([](C x, C y) { return x != y; });
      case Compare::lt: return run([](C x, C y) { return x < y; });
      case Compare::le: return run([](C x, C y) { return x <= y; });
      case Compare::gt: return run([](C x, C y) { return x > y; });
      case Compare::ge: return run([](C x, C y) { return x >= y; });
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all(a.dtype(), [&]<class T>() {
    const bool* cp = ptr<bool>(cond);
    const T* ap = ptr<T>(a);
    const T* bp = ptr<T>(b);
    T* op_ = ptr<T>(out);
    const Strides os = out.strides();
    for_each_run_parallel<4>(out.shape(), {&os, &cond.strides(), &a.strides(), &b.strides()},
                    [&](auto off, int64_t n, auto st) {
                      for (int64_t i = 0; i < n; ++i)
                        op_[off[0] + i * st[0]] = cp[off[1] + i * st[1]] ? ap[off[2] + i * st[2]] : bp[off[3] + i * st[3]];
                    });
  });
}

}  // namespace loom::cpu
