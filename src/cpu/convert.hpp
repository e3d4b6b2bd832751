// Element conversion between storage types, shared by the CPU kernels that
// move data between dtypes (copy, fill). Halves go through float; bool is
// "not zero".
#pragma once

#include <type_traits>

#include "loom/core/dtype.hpp"

namespace loom::cpu {

template <class T>
double to_double(T x) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return static_cast<float>(x);
  else return static_cast<double>(x);
}

template <class U, class T>
U convert(T x) {
  if constexpr (std::is_same_v<U, T>) {
    return x;
  } else if constexpr (std::is_same_v<U, bool>) {
    return to_double(x) != 0.0;
  } else if constexpr (std::is_same_v<U, bf16> || std::is_same_v<U, f16>) {
    return U(static_cast<float>(to_double(x)));
  } else if constexpr (std::is_integral_v<U> && std::is_integral_v<T>) {
    return static_cast<U>(x);
  } else {
    return static_cast<U>(to_double(x));
  }
}

}  // namespace loom::cpu
