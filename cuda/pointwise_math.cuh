// The arithmetic of the pointwise ops, per element, shared by the strided
// kernels (elementwise.cu) and the 16-byte packed ones (pointwise_packed.cuh):
// unary ops and their derivatives, binary ops, comparisons, on the compute
// type (float or double; halves compute in float, integers in themselves).
// Written on simt.cuh so that the emulator runs it too.
#pragma once

#include <cmath>
#include <type_traits>

#include "kernels/backend.hpp"
#include "simt.cuh"

namespace loom::pointwise {
inline namespace LOOM_SIMT_ABI {

using kernels::Binary;
using kernels::Compare;
using kernels::Unary;

constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kGeluCubic = 0.044715;

// Float/double overloads of the math functions, so one template serves both:
// CUDA's device functions under nvcc, the C++ library's on the host.
#if defined(__CUDACC__)
LOOM_SIMT_DEVICE float m_exp(float v) { return expf(v); }
LOOM_SIMT_DEVICE double m_exp(double v) { return ::exp(v); }
LOOM_SIMT_DEVICE float m_log(float v) { return logf(v); }
LOOM_SIMT_DEVICE double m_log(double v) { return ::log(v); }
LOOM_SIMT_DEVICE float m_sqrt(float v) { return sqrtf(v); }
LOOM_SIMT_DEVICE double m_sqrt(double v) { return ::sqrt(v); }
LOOM_SIMT_DEVICE float m_tanh(float v) { return tanhf(v); }
LOOM_SIMT_DEVICE double m_tanh(double v) { return ::tanh(v); }
LOOM_SIMT_DEVICE float m_erf(float v) { return erff(v); }
LOOM_SIMT_DEVICE double m_erf(double v) { return ::erf(v); }
LOOM_SIMT_DEVICE float m_pow(float a, float b) { return powf(a, b); }
LOOM_SIMT_DEVICE double m_pow(double a, double b) { return ::pow(a, b); }
#else
template <class C>
C m_exp(C v) { return std::exp(v); }
template <class C>
C m_log(C v) { return std::log(v); }
template <class C>
C m_sqrt(C v) { return std::sqrt(v); }
template <class C>
C m_tanh(C v) { return std::tanh(v); }
template <class C>
C m_erf(C v) { return std::erf(v); }
template <class C>
C m_pow(C a, C b) { return std::pow(a, b); }
#endif

struct UnaryArgs {
  double lo, hi, exponent;
  bool has_lo, has_hi;
};

inline UnaryArgs args_of(const kernels::UnaryParams& p) {
  return UnaryArgs{p.lo, p.hi, p.exponent, p.has_lo, p.has_hi};
}

template <class C>
LOOM_SIMT_DEVICE C apply_unary(Unary op, C v, const UnaryArgs& a) {
  switch (op) {
    case Unary::neg: return -v;
    case Unary::abs: return v < 0 ? -v : v;
    case Unary::relu: return v > 0 ? v : C(0);
    case Unary::clamp:
      if (a.has_lo && v < static_cast<C>(a.lo)) v = static_cast<C>(a.lo);
      if (a.has_hi && v > static_cast<C>(a.hi)) v = static_cast<C>(a.hi);
      return v;
    default: break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case Unary::exp: return m_exp(v);
      case Unary::log: return m_log(v);
      case Unary::sqrt: return m_sqrt(v);
      case Unary::rsqrt: return C(1) / m_sqrt(v);
      case Unary::tanh: return m_tanh(v);
      case Unary::sigmoid: return C(1) / (C(1) + m_exp(-v));
      case Unary::gelu_erf: return C(0.5) * v * (C(1) + m_erf(v / C(kSqrt2)));
      case Unary::gelu_tanh:
        return C(0.5) * v * (C(1) + m_tanh(C(kSqrt2OverPi) * (v + C(kGeluCubic) * v * v * v)));
      case Unary::silu: return v / (C(1) + m_exp(-v));
      case Unary::pow_scalar: return m_pow(v, static_cast<C>(a.exponent));
      default: break;
    }
  }
  return v;  // not reached: the host checks the op against the dtype
}

// d op(x) / dx from x and y = op(x).
template <class C>
LOOM_SIMT_DEVICE C unary_derivative(Unary op, C xv, C yv, const UnaryArgs& a) {
  switch (op) {
    case Unary::neg: return C(-1);
    case Unary::exp: return yv;
    case Unary::log: return C(1) / xv;
    case Unary::sqrt: return C(0.5) / yv;
    case Unary::rsqrt: return C(-0.5) * yv * yv * yv;
    case Unary::abs: return xv > 0 ? C(1) : (xv < 0 ? C(-1) : C(0));
    case Unary::tanh: return C(1) - yv * yv;
    case Unary::sigmoid: return yv * (C(1) - yv);
    case Unary::relu: return xv > 0 ? C(1) : C(0);
    case Unary::gelu_erf: {
      const C cdf = C(0.5) * (C(1) + m_erf(xv / C(kSqrt2)));
      const C pdf = C(kInvSqrt2Pi) * m_exp(C(-0.5) * xv * xv);
      return cdf + xv * pdf;
    }
    case Unary::gelu_tanh: {
      const C u = C(kSqrt2OverPi) * (xv + C(kGeluCubic) * xv * xv * xv);
      const C t = m_tanh(u);
      const C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * xv * xv);
      return C(0.5) * (C(1) + t) + C(0.5) * xv * (C(1) - t * t) * du;
    }
    case Unary::silu: {
      const C s = C(1) / (C(1) + m_exp(-xv));
      return s * (C(1) + xv * (C(1) - s));
    }
    case Unary::clamp:
      return ((a.has_lo && xv < static_cast<C>(a.lo)) || (a.has_hi && xv > static_cast<C>(a.hi))) ? C(0) : C(1);
    case Unary::pow_scalar: {
      const C e = static_cast<C>(a.exponent);
      return e == C(0) ? C(0) : e * m_pow(xv, e - C(1));
    }
  }
  return C(0);
}

template <class C>
LOOM_SIMT_DEVICE C apply_binary(Binary op, C x, C y) {
  switch (op) {
    case Binary::add: return x + y;
    case Binary::sub: return x - y;
    case Binary::mul: return x * y;
    case Binary::maximum: return x > y || x != x ? x : y;
    case Binary::minimum: return x < y || x != x ? x : y;
    default: break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case Binary::div: return x / y;
      case Binary::pow: return m_pow(x, y);
      default: break;
    }
  }
  return C(0);  // not reached: the host checks the op against the dtype
}

template <class C>
LOOM_SIMT_DEVICE bool apply_compare(Compare op, C x, C y) {
  switch (op) {
    case Compare::eq: return x == y;
    case Compare::ne: return x != y;
    case Compare::lt: return x < y;
    case Compare::le: return x <= y;
    case Compare::gt: return x > y;
    case Compare::ge: return x >= y;
  }
  return false;
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::pointwise
