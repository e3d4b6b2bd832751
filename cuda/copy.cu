// copy (strided, dtype-converting, across host and devices), fill and where.
// Floor: no FLOPs; copy moves numel * (itemsize(src) + itemsize(dst)) bytes,
// fill numel * itemsize, where numel * (1 + 3 * itemsize). Host<->device
// copies are bounded by the PCIe/NVLink link, not by these kernels.
#include <cstring>

#include "kernels.hpp"
#include "loops.cuh"

namespace loom::cuda {

void no_kernel(const char* op, const std::string& what) {
  LOOM_FAIL("op ", op, " has no CUDA kernel yet", what.empty() ? "" : " (" + what + ")");
}

namespace {

// ---- kernels ----

template <class B>
__global__ void copy_bits_kernel(int64_t n, Indexer<2> ix, const B* src, B* dst) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// A value read from any dtype: integers (bool, u8 included) exactly as
// int64, floating types as double (halves through float).
struct Value {
  double f;
  int64_t i;
  bool integral;
};

__device__ __forceinline__ Value load_value(const void* base, int dtype, int64_t off) {
  Value v{0.0, 0, false};
  switch (static_cast<DType>(dtype)) {
    case DType::f32: v.f = static_cast<const float*>(base)[off]; break;
    case DType::f64: v.f = static_cast<const double*>(base)[off]; break;
    case DType::bf16: v.f = bf16_to_float(static_cast<const uint16_t*>(base)[off]); break;
    case DType::f16: v.f = half_to_float(static_cast<const uint16_t*>(base)[off]); break;
    case DType::i32: v.i = static_cast<const int32_t*>(base)[off]; v.integral = true; break;
    case DType::i64: v.i = static_cast<const int64_t*>(base)[off]; v.integral = true; break;
    case DType::u8: v.i = static_cast<const uint8_t*>(base)[off]; v.integral = true; break;
    case DType::boolean: v.i = static_cast<const uint8_t*>(base)[off] != 0; v.integral = true; break;
  }
  return v;
}

// As the CPU's convert<U>(T): integer to integer by static_cast, anything to
// bool by "!= 0", everything else through double (halves then through float).
__device__ __forceinline__ void store_value(void* base, int dtype, int64_t off, const Value& v) {
  const double d = v.integral ? static_cast<double>(v.i) : v.f;
  switch (static_cast<DType>(dtype)) {
    case DType::f32: static_cast<float*>(base)[off] = static_cast<float>(d); break;
    case DType::f64: static_cast<double*>(base)[off] = d; break;
    case DType::bf16: static_cast<uint16_t*>(base)[off] = float_to_bf16(static_cast<float>(d)); break;
    case DType::f16: static_cast<uint16_t*>(base)[off] = float_to_half(static_cast<float>(d)); break;
    case DType::i32:
      static_cast<int32_t*>(base)[off] = v.integral ? static_cast<int32_t>(v.i) : static_cast<int32_t>(d);
      break;
    case DType::i64:
      static_cast<int64_t*>(base)[off] = v.integral ? v.i : static_cast<int64_t>(d);
      break;
    case DType::u8:
      static_cast<uint8_t*>(base)[off] = v.integral ? static_cast<uint8_t>(v.i) : static_cast<uint8_t>(d);
      break;
    case DType::boolean: static_cast<uint8_t*>(base)[off] = v.integral ? v.i != 0 : d != 0.0; break;
  }
}

__global__ void convert_kernel(int64_t n, Indexer<2> ix, const void* src, int src_dtype, void* dst, int dst_dtype) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    store_value(dst, dst_dtype, off[0], load_value(src, src_dtype, off[1]));
  }
}

template <class B>
__global__ void fill_kernel(int64_t n, Indexer<1> ix, B* dst, B value) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    dst[off[0]] = value;
  }
}

template <class B>
__global__ void where_kernel(int64_t n, Indexer<4> ix, const bool* cond, const B* a, const B* b, B* out) {
  LOOM_GRID_LOOP(i, n) {
    int64_t off[4];
    ix.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

// ---- host side ----

template <class B>
void launch_copy_bits(const Tensor& src, const Tensor& dst, cudaStream_t s) {
  const int64_t n = dst.numel();
  const auto ix = make_indexer<2>(dst.shape(), {dst.strides(), src.strides()}, "copy");
  copy_bits_kernel<B><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const B*>(src.raw_data()),
                                                       static_cast<B*>(dst.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("copy_bits_kernel", "shape ", shape_str(dst.shape()));
}

// src and dst on the same device.
void copy_on_device(const Tensor& src, const Tensor& dst) {
  OnDevice on(dst, "copy");
  on.check(src, "copy", "src");
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype()) {
    if (src.is_contiguous() && dst.is_contiguous()) {
      if (src.raw_data() != dst.raw_data())
        LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(n) * itemsize(dst.dtype()),
                                        cudaMemcpyDeviceToDevice, on.stream),
                        "shape ", shape_str(dst.shape()));
      return;
    }
    switch (itemsize(dst.dtype())) {
      case 1: return launch_copy_bits<uint8_t>(src, dst, on.stream);
      case 2: return launch_copy_bits<uint16_t>(src, dst, on.stream);
      case 4: return launch_copy_bits<uint32_t>(src, dst, on.stream);
      default: return launch_copy_bits<unsigned long long>(src, dst, on.stream);
    }
  }
  const auto ix = make_indexer<2>(dst.shape(), {dst.strides(), src.strides()}, "copy");
  convert_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(n, ix, src.raw_data(), static_cast<int>(src.dtype()),
                                                          dst.raw_data(), static_cast<int>(dst.dtype()));
  LOOM_CUDA_CHECK_LAUNCH("convert_kernel", dtype_name(src.dtype()), " -> ", dtype_name(dst.dtype()), " shape ",
                         shape_str(dst.shape()));
}

// A dense copy of t in `dtype` on t's device: t itself when it already is one.
Tensor dense_on_device(const Tensor& t, DType dtype) {
  if (t.is_contiguous() && t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), TensorOptions(dtype).with_device(t.device()));
  copy_on_device(t, out);
  return out;
}

// The same on the host, with the CPU kernels.
Tensor dense_on_host(const Tensor& t, DType dtype) {
  if (t.is_contiguous() && t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), TensorOptions(dtype));
  kernels::backend(kCPU).copy(t, out);
  return out;
}

void copy_device_to_host(const Tensor& src, const Tensor& dst) {
  const int dev = src.device().index;
  DeviceGuard guard(dev);
  Tensor staged = dense_on_device(src, dst.dtype());
  Tensor target = dst.is_contiguous() ? dst : empty(dst.shape(), TensorOptions(dst.dtype()));
  const size_t bytes = static_cast<size_t>(dst.numel()) * itemsize(dst.dtype());
  LOOM_CUDA_CHECK(cudaMemcpyAsync(target.raw_data(), staged.raw_data(), bytes, cudaMemcpyDeviceToHost, stream(dev)),
                  bytes, " bytes from ", src.device().str());
  LOOM_CUDA_CHECK(cudaStreamSynchronize(stream(dev)), "copy from ", src.device().str(), " to the host");
  if (!target.is_same(dst)) kernels::backend(kCPU).copy(target, dst);
}

void copy_host_to_device(const Tensor& src, const Tensor& dst) {
  const int dev = dst.device().index;
  DeviceGuard guard(dev);
  Tensor host = dense_on_host(src, dst.dtype());
  Tensor target = dst.is_contiguous() ? dst : empty(dst.shape(), TensorOptions(dst.dtype()).with_device(dst.device()));
  const size_t bytes = static_cast<size_t>(dst.numel()) * itemsize(dst.dtype());
  // Staged through pinned memory: the host buffer (possibly a temporary) may
  // go at once, and the caller does not wait for the transfer.
  upload_async(target.raw_data(), host.raw_data(), bytes, dev);
  if (!target.is_same(dst)) copy_on_device(target, dst);
}

void copy_device_to_device(const Tensor& src, const Tensor& dst) {
  const int sdev = src.device().index, ddev = dst.device().index;
  Tensor staged;
  {
    DeviceGuard guard(sdev);
    staged = dense_on_device(src, dst.dtype());
  }
  Tensor target = dst.is_contiguous() ? dst : empty(dst.shape(), TensorOptions(dst.dtype()).with_device(dst.device()));
  const size_t bytes = static_cast<size_t>(dst.numel()) * itemsize(dst.dtype());
  {
    DeviceGuard guard(ddev);  // work queued on the target's memory must be done
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream(ddev)), dst.device().str());
  }
  {
    DeviceGuard guard(sdev);
    LOOM_CUDA_CHECK(cudaMemcpyPeerAsync(target.raw_data(), ddev, staged.raw_data(), sdev, bytes, stream(sdev)), bytes,
                    " bytes ", src.device().str(), " -> ", dst.device().str());
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream(sdev)), src.device().str());
  }
  if (!target.is_same(dst)) copy_on_device(target, dst);
}

template <class B>
void launch_fill(const Tensor& dst, const void* bits, cudaStream_t s) {
  B v;
  std::memcpy(&v, bits, sizeof(B));
  const int64_t n = dst.numel();
  const auto ix = make_indexer<1>(dst.shape(), {dst.strides()}, "fill");
  fill_kernel<B><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<B*>(dst.raw_data()), v);
  LOOM_CUDA_CHECK_LAUNCH("fill_kernel", "shape ", shape_str(dst.shape()));
}

template <class B>
void launch_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t s) {
  const int64_t n = out.numel();
  const auto ix = make_indexer<4>(out.shape(), {out.strides(), cond.strides(), a.strides(), b.strides()}, "where");
  where_kernel<B><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const bool*>(cond.raw_data()),
                                                   static_cast<const B*>(a.raw_data()),
                                                   static_cast<const B*>(b.raw_data()), static_cast<B*>(out.raw_data()));
  LOOM_CUDA_CHECK_LAUNCH("where_kernel", "shape ", shape_str(out.shape()));
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  LOOM_CHECK(src.shape() == dst.shape(), "copy: source shape ", shape_str(src.shape()), " != destination shape ",
             shape_str(dst.shape()));
  if (dst.numel() == 0) return;
  const bool s_cuda = src.device().is_cuda(), d_cuda = dst.device().is_cuda();
  LOOM_CHECK(s_cuda || d_cuda, "copy: neither ", src.device().str(), " nor ", dst.device().str(), " is a CUDA device");
  if (s_cuda && d_cuda) {
    if (src.device() == dst.device()) return copy_on_device(src, dst);
    return copy_device_to_device(src, dst);
  }
  if (s_cuda) return copy_device_to_host(src, dst);
  return copy_host_to_device(src, dst);
}

void fill(const Tensor& dst, double value) {
  OnDevice on(dst, "fill");
  if (dst.numel() == 0) return;
  // The value in dst's dtype, converted exactly as the CPU does it.
  Tensor one = empty({}, TensorOptions(dst.dtype()));
  kernels::backend(kCPU).fill(one, value);
  unsigned char bits[8] = {};
  std::memcpy(bits, one.raw_data(), itemsize(dst.dtype()));
  bool zero = true;
  for (unsigned char b : bits) zero &= b == 0;
  if (zero && dst.is_contiguous()) {
    LOOM_CUDA_CHECK(cudaMemsetAsync(dst.raw_data(), 0, static_cast<size_t>(dst.numel()) * itemsize(dst.dtype()),
                                    on.stream),
                    "shape ", shape_str(dst.shape()));
    return;
  }
  switch (itemsize(dst.dtype())) {
    case 1: return launch_fill<uint8_t>(dst, bits, on.stream);
    case 2: return launch_fill<uint16_t>(dst, bits, on.stream);
    case 4: return launch_fill<uint32_t>(dst, bits, on.stream);
    default: return launch_fill<unsigned long long>(dst, bits, on.stream);
  }
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  OnDevice on(out, "where");
  on.check(cond, "where", "cond");
  on.check(a, "where", "a");
  on.check(b, "where", "b");
  LOOM_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", dtype_name(cond.dtype()));
  LOOM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where: dtypes ", dtype_name(a.dtype()), ", ",
             dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
  if (out.numel() == 0) return;
  switch (itemsize(out.dtype())) {
    case 1: return launch_where<uint8_t>(cond, a, b, out, on.stream);
    case 2: return launch_where<uint16_t>(cond, a, b, out, on.stream);
    case 4: return launch_where<uint32_t>(cond, a, b, out, on.stream);
    default: return launch_where<unsigned long long>(cond, a, b, out, on.stream);
  }
}

}  // namespace loom::cuda
