// The CUDA row of the dispatch table. kernels::backend() asks for it the
// first time a CUDA tensor needs a kernel; it is registered (and returned)
// only when a device is present.
#if LOOM_WITH_CUDA

#include <mutex>

#include "kernels.hpp"
#include "loom/core/cuda.hpp"

namespace loom::kernels {

const Backend* cuda_backend() {
  static const Backend table{
      .copy = cuda::copy,
      .fill = cuda::fill,
      .unary = cuda::unary,
      .unary_backward = cuda::unary_backward,
      .binary = cuda::binary,
      .compare = cuda::compare,
      .where = cuda::where,
      .reduce = cuda::reduce,
      .gemm = cuda::gemm,
      .softmax = cuda::softmax,
      .softmax_backward = cuda::softmax_backward,
      .norm = cuda::norm,
      .norm_backward = cuda::norm_backward,
      .cross_entropy = cuda::cross_entropy,
      .cross_entropy_backward = cuda::cross_entropy_backward,
      .index_select = cuda::index_select,
      .index_add = cuda::index_add,
      .gather = cuda::gather,
      .scatter = cuda::scatter,
      .uniform = cuda::uniform,
      .normal = cuda::normal,
      .dropout_mask = cuda::dropout_mask,
      .unfold2d = cuda::unfold2d,
      .fold2d = cuda::fold2d,
      .adamw = cuda::adamw,
      .attention = cuda::attention,
      .attention_backward = cuda::attention_backward,
      .adamw_multi = cuda::adamw_multi,
      .sum_squares = cuda::sum_squares,
      .linear = cuda::linear,
      .linear_weight_grad = cuda::linear_weight_grad,
#if LOOM_WITH_CUDNN
      .convolution = cuda::convolution,
      .convolution_backward = cuda::convolution_backward,
#endif
      .power_spectrum = cuda::power_spectrum,
#if LOOM_WITH_CUDNN && LOOM_WITH_CUDNN_FRONTEND
      .vendor_attention = cuda::vendor_attention,
      .vendor_attention_backward = cuda::vendor_attention_backward,
#endif
  };
  static const Backend* registered = [] {
    if (!cuda_available()) return static_cast<const Backend*>(nullptr);
    register_backend(DeviceType::CUDA, &table);
    return &table;
  }();
  return registered;
}

}  // namespace loom::kernels

#endif  // LOOM_WITH_CUDA
