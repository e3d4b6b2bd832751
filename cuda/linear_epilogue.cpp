// A linear layer's products through cuBLASLt with their epilogues:
// - forward: out = x . W^T + bias, the bias (and GELU, tanh form) applied as
//   the product is written (CUBLASLT_EPILOGUE_BIAS / GELU_AUX_BIAS, the
//   latter also storing GELU's input for the backward), one rounding of a
//   half output;
// - backward: dW = grad^T . x with the bias gradient (the column sums of
//   grad) taken from the same pass over grad (CUBLASLT_EPILOGUE_BGRADB);
//   half operands may write both in f32 (an f32 master weight's gradients
//   under autocast, with no cast after).
// Floor: 2 M N K FLOPs each; the forward reads M K + N K + N values and
// writes M N (2 M N with GELU's input), where the composition wrote the
// product and read it back once per add and activation.
// cuBLASLt's algorithm is chosen once per shape, dtype, epilogue and operand
// alignment (plan_cache.hpp); the descriptors are made per call (cheap, and
// they carry the call's pointers).
// A call cuBLASLt has no algorithm for (dtype, epilogue, alignment, an f64
// epilogue) is declined, touching nothing, and the op composes it instead.
#if LOOM_WITH_CUDA

#include <cstdint>
#include <memory>

#include "kernels.hpp"
#include "plan_cache.hpp"
#include "runtime.hpp"

namespace loom::cuda {

namespace {

struct MatmulDesc {
  cublasLtMatmulDesc_t handle = nullptr;
  ~MatmulDesc() {
    if (handle != nullptr) cublasLtMatmulDescDestroy(handle);
  }
};

struct MatrixLayout {
  cublasLtMatrixLayout_t handle = nullptr;
  ~MatrixLayout() {
    if (handle != nullptr) cublasLtMatrixLayoutDestroy(handle);
  }
};

struct Preference {
  cublasLtMatmulPreference_t handle = nullptr;
  ~Preference() {
    if (handle != nullptr) cublasLtMatmulPreferenceDestroy(handle);
  }
};

template <class T>
void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  LOOM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)), "attribute ",
                    static_cast<int>(attribute));
}

template <class T>
void set_preference(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attribute, const T& value) {
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attribute, &value, sizeof(value)), "preference ",
                    static_cast<int>(attribute));
}

// The largest power of two up to 256 that divides the address: the alignment
// cuBLASLt's algorithm choice may rely on.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

// A column-major matrix as cuBLASLt stores it: rows x cols, leading dim ld.
struct Operand {
  const void* data;
  uint64_t rows, cols;
  int64_t ld;
};

// A contiguous row-major [rows, cols] matrix is cuBLASLt's column-major
// cols x rows matrix with leading dim cols.
Operand column_major(const Tensor& t) {
  return {t.raw_data(), static_cast<uint64_t>(t.size(1)), static_cast<uint64_t>(t.size(0)), t.size(1)};
}

// One product D = op(A) op(B) with an epilogue (column-major, as cuBLASLt
// sees every operand). loom's row-major matrices are their transposes.
struct LtProduct {
  cublasOperation_t trans_a, trans_b;
  Operand a, b, d;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // read by BIAS epilogues, written by BGRAD ones
  void* aux = nullptr;         // GELU's input, rows x cols like D
  int64_t aux_ld = 0;
  bool f32_output = false;     // D and the bias gradient in f32, A and B in half
};

// Runs p on the device's stream; false when cuBLASLt offers no algorithm.
bool run(const LtProduct& p, DType t, int device, const char* what) {
  const bool f64 = t == DType::f64;
  const cudaDataType_t type = f64 ? CUDA_R_64F : t == DType::bf16 ? CUDA_R_16BF : t == DType::f16 ? CUDA_R_16F : CUDA_R_32F;
  const cudaDataType_t d_type = p.f32_output ? CUDA_R_32F : type;
  MatmulDesc desc;
  LOOM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.handle, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
                                             f64 ? CUDA_R_64F : CUDA_R_32F),
                    what);
  set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_TRANSA, p.trans_a);
  set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_TRANSB, p.trans_b);
  set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE, p.epilogue);
  if (p.bias != nullptr) {
    set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);
    set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, d_type);
  }
  if (p.aux != nullptr) {
    set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, p.aux);
    set_attribute(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, p.aux_ld);
  }
  MatrixLayout la, lb, ld;
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la.handle, type, p.a.rows, p.a.cols, p.a.ld), what, " A");
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb.handle, type, p.b.rows, p.b.cols, p.b.ld), what, " B");
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld.handle, d_type, p.d.rows, p.d.cols, p.d.ld), what, " D");

  cublasLtHandle_t lt = cublaslt(device);
  // cuBLASLt's first choice for this shape, asked once (null: none usable).
  static auto* plans = new PlanCache<cublasLtMatmulAlgo_t>();
  const uint32_t align_a = alignment_of(p.a.data), align_b = alignment_of(p.b.data), align_d = alignment_of(p.d.data);
  const PlanKey key{device,   static_cast<int64_t>(t), p.trans_a, p.trans_b, static_cast<int64_t>(p.a.rows),
                    static_cast<int64_t>(p.a.cols), p.a.ld,     static_cast<int64_t>(p.b.rows),
                    static_cast<int64_t>(p.b.cols), p.b.ld,     static_cast<int64_t>(p.d.rows),
                    static_cast<int64_t>(p.d.cols), p.d.ld,     p.epilogue, p.aux_ld, align_a, align_b, align_d,
                    p.f32_output};
  const std::shared_ptr<cublasLtMatmulAlgo_t> algo = plans->get(key, [&]() -> std::shared_ptr<cublasLtMatmulAlgo_t> {
    Preference pref;
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.handle), what);
    set_preference(pref.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                   static_cast<uint64_t>(kCublasLtWorkspaceBytes));
    set_preference(pref.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
    set_preference(pref.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
    set_preference(pref.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
    set_preference(pref.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
    cublasLtMatmulHeuristicResult_t choice{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc.handle, la.handle, lb.handle, ld.handle,
                                                             ld.handle, pref.handle, 1, &choice, &found);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)) return nullptr;
    LOOM_CUBLAS_CHECK(st, what, " (heuristic)");
    if (choice.state != CUBLAS_STATUS_SUCCESS) return nullptr;  // the one result offered is not usable
    return std::make_shared<cublasLtMatmulAlgo_t>(choice.algo);
  });
  if (algo == nullptr) return false;
  const double alpha64 = 1.0, beta64 = 0.0;
  const float alpha32 = 1.0f, beta32 = 0.0f;
  const void* alpha = f64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = f64 ? static_cast<const void*>(&beta64) : &beta32;
  LOOM_CUBLAS_CHECK(cublasLtMatmul(lt, desc.handle, alpha, p.a.data, la.handle, p.b.data, lb.handle, beta, p.d.data,
                                   ld.handle, const_cast<void*>(p.d.data), ld.handle, algo.get(),
                                   cublaslt_workspace(device), kCublasLtWorkspaceBytes, stream(device)),
                    what, " ", dtype_name(t), " D ", p.d.rows, "x", p.d.cols, " K ",
                    p.trans_a == CUBLAS_OP_N ? p.a.cols : p.a.rows);
  return true;
}

bool takes_dtype(DType t) { return t == DType::f32 || t == DType::f64 || is_half(t); }

bool aligned16(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }

}  // namespace

bool linear(const Tensor& x, const Tensor& weight, const Tensor& bias, kernels::LinearEpilogue e, const Tensor& out,
            const Tensor& pre) {
  const Device dev = out.device();
  check_on_device(x, dev, "linear", "x");
  check_on_device(weight, dev, "linear", "weight");
  check_on_device(bias, dev, "linear", "bias");
  const bool gelu = e == kernels::LinearEpilogue::bias_gelu_tanh;
  if (gelu) check_on_device(pre, dev, "linear", "pre");
  const int64_t n = weight.size(0);
  // GELU's stored input needs a leading dim divisible by 8.
  if (!takes_dtype(out.dtype()) || (gelu && n % 8 != 0) || !aligned16(bias) || !aligned16(pre)) return false;
  DeviceGuard guard(dev.index);
  // out^T [N, M] = (W^T [K, N])^T . x^T [K, M].
  LtProduct p{CUBLAS_OP_T, CUBLAS_OP_N, column_major(weight), column_major(x), column_major(out)};
  p.epilogue = gelu ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_BIAS;
  p.bias = bias.raw_data();
  if (gelu) {
    p.aux = pre.raw_data();
    p.aux_ld = n;
  }
  return run(p, out.dtype(), dev.index, "linear (cuBLASLt)");
}

bool linear_weight_grad(const Tensor& grad, const Tensor& x, const Tensor& grad_w, const Tensor& grad_b) {
  const Device dev = grad_w.device();
  check_on_device(grad, dev, "linear backward", "grad");
  check_on_device(x, dev, "linear backward", "x");
  check_on_device(grad_b, dev, "linear backward", "grad_b");
  if (!takes_dtype(grad.dtype()) || !aligned16(grad_b) || grad_b.dtype() != grad_w.dtype()) return false;
  // Half products may write f32 gradients: an f32 master weight's, with no
  // cast pass after.
  const bool f32_output = grad_w.dtype() != grad.dtype();
  if (f32_output && !(is_half(grad.dtype()) && grad_w.dtype() == DType::f32)) return false;
  DeviceGuard guard(dev.index);
  // dW^T [K, N] = x^T [K, M] . (grad^T [N, M])^T; the bias gradient sums
  // op(B) (grad) over the product's inner dim M.
  LtProduct p{CUBLAS_OP_N, CUBLAS_OP_T, column_major(x), column_major(grad), column_major(grad_w)};
  p.epilogue = CUBLASLT_EPILOGUE_BGRADB;
  p.bias = grad_b.raw_data();
  p.f32_output = f32_output;
  return run(p, grad.dtype(), dev.index, "linear weight gradient (cuBLASLt)");
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA
