#include "cpu/kernels.hpp"

namespace loom::kernels {

const Backend* cpu_backend() {
  static const Backend table{
      cpu::copy,          cpu::fill,          cpu::unary,         cpu::unary_backward,
      cpu::binary,        cpu::compare,       cpu::where,         cpu::reduce,
      cpu::gemm,          cpu::softmax,       cpu::softmax_backward, cpu::norm,
      cpu::norm_backward, cpu::cross_entropy, cpu::cross_entropy_backward, cpu::index_select,
      cpu::index_add,     cpu::gather,        cpu::scatter,       cpu::uniform,
      cpu::normal,        cpu::unfold2d,      cpu::fold2d,       cpu::adamw,
  };
  return &table;
}

}  // namespace loom::kernels
