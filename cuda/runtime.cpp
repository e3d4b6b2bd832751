// The CUDA runtime's host side: device discovery, error reporting, the
// per-device stream and cuBLAS handle, and moving tensors between devices.
// Compiled in every build; without LOOM_WITH_CUDA it reports "no CUDA".
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

#include "loom/core/cuda.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "ops/common.hpp"

#if LOOM_WITH_CUDA
#include "runtime.hpp"
#endif

namespace loom {

#if LOOM_WITH_CUDA

namespace cuda {

namespace {

struct Discovery {
  int count = 0;
  std::string reason;  // why count is 0
};

const Discovery& discovery() {
  static const Discovery d = [] {
    Discovery r;
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it: it is an answer here, not a failure
      r.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")";
      return r;
    }
    if (n == 0) {
      r.reason = "cudaGetDeviceCount: 0 devices";
      return r;
    }
    r.count = n;
    return r;
  }();
  return d;
}

// The stream and cuBLAS handle of one device, made on first use and never
// destroyed (tensors held by static objects may outlive any teardown order).
struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  std::once_flag lt_once;
  cublasLtHandle_t lt = nullptr;
  void* lt_workspace = nullptr;
};

DeviceState& state(int device) {
  static std::vector<std::unique_ptr<DeviceState>>* states = [] {
    auto* v = new std::vector<std::unique_ptr<DeviceState>>();
    for (int i = 0; i < discovery().count; ++i) v->push_back(std::make_unique<DeviceState>());
    return v;
  }();
  LOOM_CHECK(device >= 0 && device < static_cast<int>(states->size()), "cuda:", device, " does not exist (",
             states->size(), " CUDA device(s) visible", states->empty() ? ": " + discovery().reason : "", ")");
  DeviceState& s = *(*states)[static_cast<size_t>(device)];
  std::call_once(s.once, [&] {
    DeviceGuard guard(device);
    LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "device ", device);
    LOOM_CUBLAS_CHECK(cublasCreate(&s.handle), "device ", device);
    LOOM_CUBLAS_CHECK(cublasSetStream(s.handle, s.stream), "device ", device);
    // Default math never lowers a requested precision: with CUBLAS_COMPUTE_32F
    // (cuda/gemm.cpp) fp32 GEMMs run in fp32, not TF32.
    LOOM_CUBLAS_CHECK(cublasSetMathMode(s.handle, CUBLAS_DEFAULT_MATH), "device ", device);
  });
  return s;
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_(unknown)";
  }
}

}  // namespace

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line, const std::string& context) {
  std::ostringstream os;
  os << "CUDA error in " << call;
  if (!context.empty()) os << " [" << context << "]";
  os << " at " << file << ":" << line << ": " << cudaGetErrorName(err) << ": " << cudaGetErrorString(err);
  throw Error(os.str());
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line,
                        const std::string& context) {
  std::ostringstream os;
  os << "cuBLAS error in " << call;
  if (!context.empty()) os << " [" << context << "]";
  os << " at " << file << ":" << line << ": " << cublas_status_name(status) << ": " << cublasGetStatusString(status);
  throw Error(os.str());
}

cudaStream_t stream(int device) { return state(device).stream; }
cublasHandle_t cublas(int device) { return state(device).handle; }

namespace {
DeviceState& lt_state(int device) {
  DeviceState& s = state(device);
  std::call_once(s.lt_once, [&] {
    DeviceGuard guard(device);
    void* workspace = nullptr;
    LOOM_CUDA_CHECK(cudaMalloc(&workspace, kCublasLtWorkspaceBytes), "device ", device);
    cublasLtHandle_t lt = nullptr;
    const cublasStatus_t st = cublasLtCreate(&lt);
    if (st != CUBLAS_STATUS_SUCCESS) cudaFree(workspace);  // call_once retries next time: leak nothing
    LOOM_CUBLAS_CHECK(st, "device ", device);
    s.lt_workspace = workspace;
    s.lt = lt;
  });
  return s;
}
}  // namespace

cublasLtHandle_t cublaslt(int device) { return lt_state(device).lt; }
void* cublaslt_workspace(int device) { return lt_state(device).lt_workspace; }

DeviceGuard::DeviceGuard(int device) {
  LOOM_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) LOOM_CUDA_CHECK(cudaSetDevice(device), "device ", device);
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_ && previous_ >= 0) cudaSetDevice(previous_);
}

void check_on_device(const Tensor& t, Device device, const char* op, const char* arg) {
  LOOM_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
  LOOM_CHECK(t.device() == device, op, ": argument '", arg, "' is on ", t.device().str(), ", expected ",
             device.str(), " (move it with loom::to_device)");
}

bool built_with_cuda() { return true; }

void synchronize(int device) {
  if (host_emulated_devices() > device) return;  // host memory: nothing is queued
  state(device);
  DeviceGuard guard(device);
  LOOM_CUDA_CHECK(cudaStreamSynchronize(stream(device)), "device ", device);
}

std::string device_name(int device) {
  if (host_emulated_devices() > device) return "host emulation of cuda:" + std::to_string(device);
  state(device);
  cudaDeviceProp prop{};
  LOOM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device), "device ", device);
  std::ostringstream os;
  os << prop.name << " (sm_" << prop.major << prop.minor << ", "
     << static_cast<double>(prop.totalGlobalMem) / static_cast<double>(1ull << 30) << " GiB)";
  return os.str();
}

}  // namespace cuda

bool cuda_available() { return cuda::host_emulated_devices() > 0 || cuda::discovery().count > 0; }
int cuda_device_count() {
  return cuda::host_emulated_devices() > 0 ? cuda::host_emulated_devices() : cuda::discovery().count;
}
std::string cuda_unavailable_reason() { return cuda::host_emulated_devices() > 0 ? "" : cuda::discovery().reason; }

#else  // !LOOM_WITH_CUDA

namespace {
const char* kNoCuda = "this build of loom has no CUDA backend";
}

bool cuda_available() { return cuda::host_emulated_devices() > 0; }
int cuda_device_count() { return cuda::host_emulated_devices(); }
std::string cuda_unavailable_reason() { return cuda::host_emulated_devices() > 0 ? "" : kNoCuda; }

namespace cuda {
bool built_with_cuda() { return false; }
void synchronize(int device) {
  LOOM_CHECK(host_emulated_devices() > device, "cuda::synchronize(cuda:", device, "): ", kNoCuda);
}
std::string device_name(int device) {
  LOOM_CHECK(host_emulated_devices() > device, "cuda::device_name(cuda:", device, "): ", kNoCuda);
  return "host emulation of cuda:" + std::to_string(device);
}
}  // namespace cuda

#endif  // LOOM_WITH_CUDA

Tensor to_device(const Tensor& t, Device device) {
  check_defined(t, "to_device", "t");
  if (t.device() == device) return t;
  const Device cuda_side = t.device().is_cuda() ? t.device() : device;
  LOOM_CHECK(cuda_available(), "to_device(", t.device().str(), " -> ", device.str(), "): ", cuda_unavailable_reason());
  Tensor out = empty(t.shape(), TensorOptions(t.dtype()).with_device(device));
  // The CUDA table's copy handles host<->device and device<->device.
  kernels::backend(cuda_side).copy(t, out);
  if (!is_floating(t.dtype())) return out;
  return ops::record("to_device", out, {t}, {}, [from = t.device()](const ops::BackwardContext&, const Tensor& g) {
    return std::vector<Tensor>{to_device(g, from)};
  });
}

}  // namespace loom
