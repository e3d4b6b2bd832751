// conv2d through cuDNN: forward, data and filter gradients on NCHW tensors in
// f32, f64, bf16 and f16 (f32 accumulation); the bias and its gradient with
// this backend's own pointwise and reduce kernels.
// cuDNN's convolution API (cudnnConvolutionForward and its two backward
// calls; still shipped in cuDNN 9 beside the graph API, which needs the
// frontend header library to be practical) with deterministic algorithms
// only, picked by cuDNN's heuristics once per shape (plan_cache.hpp), each run with its own math type; f32
// and f64 take only algorithms off the tensor cores (no TF32, as loom's
// GEMMs), halves may use them. The workspace comes from loom's caching
// allocator.
// Floor: 2 N O C KH KW OH OW FLOPs forward, the same again for each
// gradient; reads x and W and writes y once each (no im2col columns).
// A convolution cuDNN offers no algorithm for, forward or either gradient, is
// declined (the op composes it from im2col + GEMM), so the backward of an
// accepted forward has its algorithms.
#if LOOM_WITH_CUDA && LOOM_WITH_CUDNN

#include <array>
#include <climits>
#include <memory>
#include <sstream>

#include "cudnn_handle.hpp"
#include "kernels.hpp"
#include "plan_cache.hpp"
#include "loom/ops/creation.hpp"
#include "runtime.hpp"

namespace loom::cuda {

namespace {

// Workspace beyond this rules an algorithm out (the next one is taken).
constexpr size_t kMaxWorkspaceBytes = size_t{256} << 20;

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

// One algorithm choice: what to run, its workspace and its math type.
template <class Algo>
struct Choice {
  Algo algo{};
  size_t bytes = 0;
  cudnnMathType_t math{};
};

// The first algorithm of cuDNN's ranking (query(count, &found, results))
// that succeeded, is deterministic, fits the workspace limit and, for f32
// and f64, does not run on the tensor cores (no TF32); false when there is
// none. The math type is the algorithm's own: it is set on the descriptor
// before the call.
template <class Perf, int kCount, class Algo, class Query>
bool pick(Query query, bool allow_tensor_ops, Choice<Algo>& choice) {
  std::array<Perf, kCount> perf{};
  int found = 0;
  LOOM_CUDNN_CHECK(query(kCount, &found, perf.data()));
  for (int i = 0; i < found; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (perf[i].memory > kMaxWorkspaceBytes) continue;
    if (!allow_tensor_ops && perf[i].mathType != CUDNN_DEFAULT_MATH && perf[i].mathType != CUDNN_FMA_MATH) continue;
    choice = {perf[i].algo, perf[i].memory, perf[i].mathType};
    return true;
  }
  return false;
}

bool find_forward(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops, Choice<cudnnConvolutionFwdAlgo_t>& c) {
  return pick<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
      [&](int n, int* found, cudnnConvolutionFwdAlgoPerf_t* perf) {
        return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, n, found, perf);
      },
      tensor_ops, c);
}

bool find_data(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops, Choice<cudnnConvolutionBwdDataAlgo_t>& c) {
  return pick<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
      [&](int n, int* found, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, n, found, perf);
      },
      tensor_ops, c);
}

bool find_filter(cudnnHandle_t h, const ConvDescriptors& d, bool tensor_ops,
                 Choice<cudnnConvolutionBwdFilterAlgo_t>& c) {
  return pick<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
      [&](int n, int* found, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, n, found, perf);
      },
      tensor_ops, c);
}

// cuDNN's algorithms for one convolution shape: the forward and both
// gradients, chosen together (accepting a forward promises its backward).
struct ConvPlan {
  Choice<cudnnConvolutionFwdAlgo_t> forward;
  Choice<cudnnConvolutionBwdDataAlgo_t> data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> filter;
};

// The plan for d's convolution, chosen once per shape and dtype (null: cuDNN
// has no deterministic algorithm for one of the three).
std::shared_ptr<ConvPlan> plan_for(cudnnHandle_t h, const ConvDescriptors& d, const Tensor& x, const Tensor& w,
                                   const kernels::Window2d& win, int device) {
  static auto* plans = new PlanCache<ConvPlan>();
  const PlanKey key{device,    static_cast<int64_t>(x.dtype()), x.size(0), x.size(1), x.size(2), x.size(3),
                    w.size(0), w.size(2), w.size(3), win.sh, win.sw, win.ph, win.pw};
  return plans->get(key, [&]() -> std::shared_ptr<ConvPlan> {
    const bool tensor_ops = is_half(x.dtype());
    auto p = std::make_shared<ConvPlan>();
    if (!find_forward(h, d, tensor_ops, p->forward) || !find_data(h, d, tensor_ops, p->data) ||
        !find_filter(h, d, tensor_ops, p->filter))
      return nullptr;
    return p;
  });
}

// A chosen algorithm made ready: its math type set on the descriptor, and
// its workspace (device scratch from the caching allocator, kept alive by the
// caller for the call).
template <class Algo>
Tensor prepare(const Choice<Algo>& c, const ConvDescriptors& d, Device dev) {
  LOOM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  return empty({static_cast<int64_t>(std::max<size_t>(c.bytes, 1))}, TensorOptions(DType::u8).with_device(dev));
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
  const std::shared_ptr<ConvPlan> plan = plan_for(h, d, x, weight, win, dev.index);
  if (plan == nullptr) return false;
  const auto& fwd = plan->forward;
  const Tensor ws = prepare(fwd, d, dev);
  LOOM_CUDNN_CHECK(cudnnConvolutionForward(h, d.one(), d.x, x.raw_data(), d.w, weight.raw_data(), d.conv, fwd.algo,
                                           ws.raw_data(), fwd.bytes, d.zero(), d.y, out.raw_data()),
                   shapes(x, weight), ", algorithm ", static_cast<int>(fwd.algo));
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
  const std::shared_ptr<ConvPlan> plan = plan_for(h, d, x, weight, win, dev.index);
  LOOM_CHECK(plan != nullptr, "conv2d backward: cuDNN has no deterministic algorithms for ", shapes(x, weight));
  if (grad_x.defined()) {
    check_on_device(grad_x, dev, "conv2d backward", "grad_x");
    const auto& c = plan->data;
    const Tensor ws = prepare(c, d, dev);
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, d.one(), d.w, weight.raw_data(), d.y, grad.raw_data(), d.conv,
                                                  c.algo, ws.raw_data(), c.bytes, d.zero(), d.x, grad_x.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(c.algo));
  }
  if (grad_w.defined()) {
    check_on_device(grad_w, dev, "conv2d backward", "grad_w");
    const auto& c = plan->filter;
    const Tensor ws = prepare(c, d, dev);
    LOOM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, d.one(), d.x, x.raw_data(), d.y, grad.raw_data(), d.conv,
                                                    c.algo, ws.raw_data(), c.bytes, d.zero(), d.w, grad_w.raw_data()),
                     shapes(x, weight), ", algorithm ", static_cast<int>(c.algo));
  }
  if (grad_b.defined()) {
    check_on_device(grad_b, dev, "conv2d backward", "grad_b");
    bias_gradient(grad, grad_b);
  }
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN
