// conv2d through cuDNN: forward, data and filter gradients on NCHW tensors in
// f32, f64, bf16 and f16 (f32 accumulation); the bias and its gradient with
// this backend's own pointwise and reduce kernels.
// cuDNN's convolution API (cudnnConvolutionForward and its two backward
// calls; still shipped in cuDNN 9 beside the graph API, which needs the
// frontend header library to be practical) with deterministic algorithms
// only, picked by cuDNN's heuristics, each run with its own math type; f32
// and f64 take only algorithms off the tensor cores (no TF32, as loom's
// GEMMs), halves may use them. The workspace comes from loom's caching
// allocator.
// Floor: 2 N O C KH KW OH OW FLOPs forward, the same again for each
// gradient; reads x and W and writes y once each (no im2col columns).
// A convolution cuDNN offers no algorithm for, forward or either gradient, is
// declined (the op composes it from im2col + GEMM), so the backward of an
// accepted forward has its algorithms.
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
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
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
    LOOM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    LOOM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    LOOM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, t, dim(x_t, 0), dim(x_t, 1), dim(x_t, 2),
                                                dim(x_t, 3)),
                     "x ", shape_str(x_t.shape()));
    LOOM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, t, dim(y_t, 0), dim(y_t, 1), dim(y_t, 2),
                                                dim(y_t, 3)),
                     "y ", shape_str(y_t.shape()));
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

// The first algorithm of cuDNN's ranking that succeeded, is deterministic,
// fits the workspace limit and, for f32 and f64, does not run on the tensor
// cores (no TF32); false when there is none. The math type is the
// algorithm's own: it is set on the descriptor before each call.
template <class Perf, class Algo>
bool pick(const Perf* perf, int count, bool allow_tensor_ops, Algo& algo, size_t& workspace, cudnnMathType_t& math) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (perf[i].memory > kMaxWorkspaceBytes) continue;
    if (!allow_tensor_ops && perf[i].mathType != CUDNN_DEFAULT_MATH && perf[i].mathType != CUDNN_FMA_MATH) continue;
    algo = perf[i].algo;
    workspace = perf[i].memory;
    math = perf[i].mathType;
    return true;
  }
  return false;
}

// The three choices of one convolution: forward, data and weight gradients.
struct Algorithms {
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t data{};
  cudnnConvolutionBwdFilterAlgo_t filter{};
  size_t forward_bytes = 0, data_bytes = 0, filter_bytes = 0;
  cudnnMathType_t forward_math{}, data_math{}, filter_math{};
};

bool find_forward(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops, Algorithms& a) {
  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int found = 0;
  LOOM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, static_cast<int>(perf.size()),
                                                          &found, perf.data()));
  return pick(perf.data(), found, tensor_ops, a.forward, a.forward_bytes, a.forward_math);
}

bool find_data(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops, Algorithms& a) {
  std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> perf{};
  int found = 0;
  LOOM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, static_cast<int>(perf.size()),
                                                               &found, perf.data()));
  return pick(perf.data(), found, tensor_ops, a.data, a.data_bytes, a.data_math);
}

bool find_filter(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops, Algorithms& a) {
  std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> perf{};
  int found = 0;
  LOOM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                                 static_cast<int>(perf.size()), &found, perf.data()));
  return pick(perf.data(), found, tensor_ops, a.filter, a.filter_bytes, a.filter_math);
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

// bias [O] as a view broadcast to out [N, O, OH, OW].
Tensor over_planes(const Tensor& bias, const Tensor& out) {
  return make_view(bias, out.shape(), {0, 1, 0, 0}, bias.offset());
}

// grad_b [O] = grad [N, O, OH, OW] summed over N, OH and OW, with this
// backend's deterministic reductions (in f32 for halves, rounded once).
void bias_gradient(const Tensor& grad, const Tensor& grad_b) {
  const int64_t n = grad.size(0), o = grad.size(1), plane = grad.size(2) * grad.size(3);
  const TensorOptions on = TensorOptions(is_half(grad.dtype()) ? DType::f32 : grad.dtype()).with_device(grad.device());
  Tensor g = grad;
  if (is_half(grad.dtype())) {
    g = empty(grad.shape(), on);
    copy(grad, g);
  }
  Tensor per_plane = empty({n * o}, on), total = empty({o}, on);
  reduce(kernels::Reduce::sum, g, n * o, plane, 1, per_plane.reshape({n * o, 1}));
  reduce(kernels::Reduce::sum, per_plane, 1, n, o, total.reshape({1, o}));
  copy(total, grad_b);
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
  // Accepting promises the backward: decline unless all three have an algorithm.
  Algorithms a;
  const bool tensor_ops = is_half(x.dtype());
  if (!find_forward(h, d, tensor_ops, a) || !find_data(h, d, tensor_ops, a) || !find_filter(h, d, tensor_ops, a))
    return false;
  const Tensor ws = workspace_on(dev, a.forward_bytes);
  LOOM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.forward_math));
  LOOM_CUDNN_CHECK(cudnnConvolutionForward(h, d.one(), d.x, x.raw_data(), d.w, weight.raw_data(), d.conv, a.forward,
                                           ws.raw_data(), a.forward_bytes, d.zero(), d.y, out.raw_data()),
                   shapes(x, weight), ", algorithm ", static_cast<int>(a.forward));
  // The bias with this backend's own add (cuDNN's cudnnAddTensor is not
  // documented for bf16): out += bias broadcast over N, OH, OW.
  if (bias.defined()) binary(kernels::Binary::add, out, over_planes(bias, out), out);
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
  const bool tensor_ops = is_half(x.dtype());
  Algorithms a;
  if (grad_x.defined()) {
    check_on_device(grad_x, dev, "conv2d backward", "grad_x");
    LOOM_CHECK(find_data(h, d, tensor_ops, a), "conv2d backward: cuDNN has no deterministic data-gradient algorithm for ",
               shapes(x, weight));
    const Tensor ws = workspace_on(dev, a.data_bytes);
    LOOM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.data_math));
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, d.one(), d.w, weight.raw_data(), d.y, grad.raw_data(), d.conv,
                                                  a.data, ws.raw_data(), a.data_bytes, d.zero(), d.x,
                                                  grad_x.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(a.data));
  }
  if (grad_w.defined()) {
    check_on_device(grad_w, dev, "conv2d backward", "grad_w");
    LOOM_CHECK(find_filter(h, d, tensor_ops, a), "conv2d backward: cuDNN has no deterministic weight-gradient ",
               "algorithm for ", shapes(x, weight));
    const Tensor ws = workspace_on(dev, a.filter_bytes);
    LOOM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.filter_math));
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, d.one(), d.x, x.raw_data(), d.y, grad.raw_data(), d.conv,
                                                    a.filter, ws.raw_data(), a.filter_bytes, d.zero(), d.w,
                                                    grad_w.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(a.filter));
  }
  if (grad_b.defined()) {
    check_on_device(grad_b, dev, "conv2d backward", "grad_b");
    bias_gradient(grad, grad_b);
  }
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN
