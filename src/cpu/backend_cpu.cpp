#include "cpu/kernels.hpp"

namespace loom::kernels {

const Backend* cpu_backend() {
  static const Backend table = [] {
    Backend t{
      cpu::copy,          cpu::fill,          cpu::unary,         cpu::unary_backward,
      cpu::binary,        cpu::compare,       cpu::where,         cpu::reduce,
      cpu::gemm,          cpu::softmax,       cpu::softmax_backward, cpu::norm,
      cpu::norm_backward, cpu::cross_entropy, cpu::cross_entropy_backward, cpu::index_select,
      cpu::index_add,     cpu::gather,        cpu::scatter,       cpu::uniform,
      cpu::normal,        cpu::dropout_mask,  cpu::unfold2d,      cpu::fold2d,
      cpu::adamw,
    };
    t.sum_squares = cpu::sum_squares;
    t.linear = cpu::linear;
    t.linear_weight_grad = cpu::linear_weight_grad;
    t.convolution = cpu::convolution;
    t.convolution_backward = cpu::convolution_backward;
    t.attention = cpu::attention;
    t.attention_backward = cpu::attention_backward;
    return t;
  }();
  return &table;
}

}  // namespace loom::kernels
