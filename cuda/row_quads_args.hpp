// The host side of row_quads.cuh: whether a call's rows fit the
// register-resident row kernels, and picking the kernel built for the fit.
#pragma once

#include <initializer_list>

#include "loom/core/tensor.hpp"
#include "row_quads.cuh"

namespace loom::simt {
inline namespace LOOM_SIMT_ABI {

// How rows of `cols` columns with these operands are spread (the other
// operands of the call in `stats`, checked before); warps == 0 when the row
// kernels do not take them: they want f32 arithmetic, whole quads, f32 or
// bf16 operands each aligned to its quad.
inline RowFit row_quads_fit(DType stats, int64_t cols, std::initializer_list<const Tensor*> operands) {
  if (stats != DType::f32 || cols % 4 != 0) return {};
  for (const Tensor* t : operands) {
    if (!t->defined()) continue;
    if (t->dtype() != DType::f32 && t->dtype() != DType::bf16) return {};
    if (!aligned_to(t->raw_data(), 4 * itemsize(t->dtype()))) return {};
  }
  return row_fit(cols / 4);
}

// f<U>() with U the storage of an f32 or bf16 tensor.
template <class F>
void with_f32_or_bf16(DType dtype, F&& f) {
  if (dtype == DType::bf16)
    f.template operator()<bf16>();
  else
    f.template operator()<float>();
}

// Kernel<Warps, Quads>::get() for the spread row_fit chose.
template <template <int, int> class Kernel>
auto by_fit(RowFit fit) {
  if (fit.warps != 1) return fit.quads == 4 ? Kernel<kWarpRowWarps, 4>::get() : Kernel<kWarpRowWarps, 8>::get();
  switch (fit.quads) {
    case 1: return Kernel<1, 1>::get();
    case 2: return Kernel<1, 2>::get();
    case 4: return Kernel<1, 4>::get();
    case 6: return Kernel<1, 6>::get();
    default: return Kernel<1, 8>::get();
  }
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::simt
