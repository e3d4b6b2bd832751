// conv2d through cuDNN: forward, data and filter gradients, bias and its
// gradient, on NCHW tensors in f32, f64, bf16 and f16 (f32 accumulation).
// cuDNN's convolution API (cudnnConvolutionForward and its two backward
// calls; still shipped in cuDNN 9 beside the graph API, which needs the
// frontend header library to be practical) with deterministic algorithms
// only, picked by cuDNN's heuristics; fp32 runs on FMAs (CUDNN_FMA_MATH: no
// TF32, as loom's GEMMs), halves on the tensor cores. The workspace comes
// from loom's caching allocator.
// Floor: 2 N O C KH KW OH OW FLOPs forward, the same again for each
// gradient; reads x and W and writes y once each (no im2col columns).
// A forward cuDNN offers no algorithm for is declined (the op composes it
// from im2col + GEMM); the backward of an accepted forward is promised, so
// a missing backward algorithm is an error naming the shapes.
#if LOOM_WITH_CUDA && LOOM_WITH_CUDNN

#include <cudnn.h>

#include <array>
#include <climits>
#include <memory>
#include <mutex>
#include <sstream>

#include "kernels.hpp"
#include "loom/ops/creation.hpp"
#include "runtime.hpp"

#define LOOM_CUDNN_CHECK(call, ...)                                                                       \
  do {                                                                                                    \
    const cudnnStatus_t loom_cudnn_st_ = (call);                                                          \
    if (loom_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                                           \
      LOOM_FAIL(#call, " at " __FILE__ ":", __LINE__, ": ", cudnnGetErrorString(loom_cudnn_st_), " ",     \
                ##__VA_ARGS__);                                                                           \
  } while (0)

namespace loom::cuda {

namespace {

// Workspace beyond this rules an algorithm out (the next one is taken).
constexpr size_t kMaxWorkspaceBytes = size_t{256} << 20;

// One cuDNN handle per device, bound to the device's stream; never destroyed
// (as the streams and cuBLAS handles of runtime.cpp).
cudnnHandle_t cudnn(int device) {
  struct Slot {
    std::once_flag once;
    cudnnHandle_t handle = nullptr;
  };
  static auto* slots = new std::array<Slot, 64>();
  LOOM_CHECK(device >= 0 && device < 64, "cuDNN: device index ", device, " out of range");
  Slot& s = (*slots)[static_cast<size_t>(device)];
  std::call_once(s.once, [&] {
    DeviceGuard guard(device);
    LOOM_CUDNN_CHECK(cudnnCreate(&s.handle), "device ", device);
    LOOM_CUDNN_CHECK(cudnnSetStream(s.handle, stream(device)), "device ", device);
  });
  return s.handle;
}

bool data_type(DType t, cudnnDataType_t& out) {
  switch (t) {
    case DType::f32: out = CUDNN_DATA_FLOAT; return true;
    case DType::f64: out = CUDNN_DATA_DOUBLE; return true;
    case DType::bf16: out = CUDNN_DATA_BFLOAT16; return true;
    case DType::f16: out = CUDNN_DATA_HALF; return true;
    default: return false;
  }
}

bool fits_int(const Tensor& t) {
  for (int64_t d : t.shape())
    if (d > INT_MAX) return false;
  return t.numel() <= INT_MAX;
}

// The descriptors of one convolution, destroyed with it.
struct ConvDescriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnDataType_t type{};
  bool f64 = false;

  ConvDescriptors(const Tensor& x_t, const Tensor& w_t, const Tensor& y_t, const kernels::Window2d& win,
                  cudnnDataType_t t)
      : type(t), f64(t == CUDNN_DATA_DOUBLE) {
    auto dim = [](const Tensor& v, int i) { return static_cast<int>(v.size(i)); };
    LOOM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    LOOM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    LOOM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    LOOM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    LOOM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    LOOM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, t, dim(x_t, 0), dim(x_t, 1), dim(x_t, 2),
                                                dim(x_t, 3)),
                     "x ", shape_str(x_t.shape()));
    LOOM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, t, dim(y_t, 0), dim(y_t, 1), dim(y_t, 2),
                                                dim(y_t, 3)),
                     "y ", shape_str(y_t.shape()));
    LOOM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, t, 1, dim(w_t, 0), 1, 1));
    LOOM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NCHW, dim(w_t, 0), dim(w_t, 1), dim(w_t, 2),
                                                dim(w_t, 3)),
                     "weight ", shape_str(w_t.shape()));
    LOOM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, static_cast<int>(win.ph), static_cast<int>(win.pw),
                                                     static_cast<int>(win.sh), static_cast<int>(win.sw), 1, 1,
                                                     CUDNN_CROSS_CORRELATION,
                                                     f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
    const bool half = t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
    LOOM_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, half ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  }
  ~ConvDescriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;

  // Scaling factors in the type cuDNN reads for this data type.
  const void* one() const { return f64 ? static_cast<const void*>(&one64) : &one32; }
  const void* zero() const { return f64 ? static_cast<const void*>(&zero64) : &zero32; }
  double one64 = 1.0, zero64 = 0.0;
  float one32 = 1.0f, zero32 = 0.0f;
};

// The first algorithm of cuDNN's ranking that succeeded, is deterministic
// and fits the workspace limit; false when there is none.
template <class Perf, class Algo>
bool pick(const Perf* perf, int count, Algo& algo, size_t& workspace) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (perf[i].memory > kMaxWorkspaceBytes) continue;
    algo = perf[i].algo;
    workspace = perf[i].memory;
    return true;
  }
  return false;
}

// Device scratch from the caching allocator, alive for the call.
Tensor workspace_on(Device dev, size_t bytes) {
  return empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, TensorOptions(DType::u8).with_device(dev));
}

std::string shapes(const Tensor& x, const Tensor& w) {
  std::ostringstream os;
  os << "x " << shape_str(x.shape()) << ", weight " << shape_str(w.shape()) << ", " << dtype_name(x.dtype());
  return os.str();
}

}  // namespace

bool convolution(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                 const kernels::Window2d& win, Tensor* /*kept: cuDNN needs only x and weight*/) {
  const Device dev = out.device();
  check_on_device(x, dev, "conv2d", "x");
  check_on_device(weight, dev, "conv2d", "weight");
  if (bias.defined()) check_on_device(bias, dev, "conv2d", "bias");
  cudnnDataType_t type;
  if (!data_type(x.dtype(), type) || !fits_int(x) || !fits_int(out) || !fits_int(weight)) return false;
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  ConvDescriptors d(x, weight, out, win, type);
  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int found = 0;
  LOOM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, static_cast<int>(perf.size()),
                                                          &found, perf.data()),
                   shapes(x, weight));
  cudnnConvolutionFwdAlgo_t algo{};
  size_t bytes = 0;
  if (!pick(perf.data(), found, algo, bytes)) return false;
  const Tensor ws = workspace_on(dev, bytes);
  LOOM_CUDNN_CHECK(cudnnConvolutionForward(h, d.one(), d.x, x.raw_data(), d.w, weight.raw_data(), d.conv, algo,
                                           ws.raw_data(), bytes, d.zero(), d.y, out.raw_data()),
                   shapes(x, weight), ", algorithm ", static_cast<int>(algo));
  if (bias.defined())
    LOOM_CUDNN_CHECK(cudnnAddTensor(h, d.one(), d.bias, bias.raw_data(), d.one(), d.y, out.raw_data()),
                     "bias ", shape_str(bias.shape()));
  return true;
}

void convolution_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& /*kept*/,
                          const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b,
                          const kernels::Window2d& win) {
  const Device dev = grad.device();
  check_on_device(x, dev, "conv2d backward", "x");
  check_on_device(weight, dev, "conv2d backward", "weight");
  cudnnDataType_t type;
  LOOM_CHECK(data_type(x.dtype(), type), "conv2d backward: no cuDNN type for ", dtype_name(x.dtype()));
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  ConvDescriptors d(x, weight, grad, win, type);
  if (grad_x.defined()) {
    check_on_device(grad_x, dev, "conv2d backward", "grad_x");
    std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> perf{};
    int found = 0;
    LOOM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x,
                                                                 static_cast<int>(perf.size()), &found, perf.data()),
                     shapes(x, weight));
    cudnnConvolutionBwdDataAlgo_t algo{};
    size_t bytes = 0;
    LOOM_CHECK(pick(perf.data(), found, algo, bytes), "conv2d backward: cuDNN has no deterministic data-gradient ",
               "algorithm for ", shapes(x, weight));
    const Tensor ws = workspace_on(dev, bytes);
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, d.one(), d.w, weight.raw_data(), d.y, grad.raw_data(), d.conv,
                                                  algo, ws.raw_data(), bytes, d.zero(), d.x, grad_x.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(algo));
  }
  if (grad_w.defined()) {
    check_on_device(grad_w, dev, "conv2d backward", "grad_w");
    std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> perf{};
    int found = 0;
    LOOM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                                   static_cast<int>(perf.size()), &found, perf.data()),
                     shapes(x, weight));
    cudnnConvolutionBwdFilterAlgo_t algo{};
    size_t bytes = 0;
    LOOM_CHECK(pick(perf.data(), found, algo, bytes), "conv2d backward: cuDNN has no deterministic weight-gradient ",
               "algorithm for ", shapes(x, weight));
    const Tensor ws = workspace_on(dev, bytes);
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, d.one(), d.x, x.raw_data(), d.y, grad.raw_data(), d.conv,
                                                    algo, ws.raw_data(), bytes, d.zero(), d.w, grad_w.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(algo));
  }
  if (grad_b.defined()) {
    check_on_device(grad_b, dev, "conv2d backward", "grad_b");
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, d.one(), d.y, grad.raw_data(), d.zero(), d.bias,
                                                  grad_b.raw_data()),
                     shapes(x, weight));
  }
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN
