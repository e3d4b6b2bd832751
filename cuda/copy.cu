// The copy entries of the CUDA table: copy (strided, dtype-converting, across
// host and devices), fill and where. The kernels (and floors) are in
// copy_kernels.cuh; host<->device copies are bounded by the PCIe/NVLink link,
// not by them.
#include <cstring>

#include "copy_args.hpp"
#include "kernels.hpp"
#include "kernels/variants.hpp"
#include "loops.cuh"

namespace loom::cuda {

void no_kernel(const char* op, const std::string& what) { strided::fail_no_kernel(op, what); }

namespace {

// src and dst on the same device.
void copy_on_device(const Tensor& src, const Tensor& dst) {
  OnDevice on(dst, "copy");
  on.check(src, "copy", "src");
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (src.raw_data() != dst.raw_data())
      LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(n) * itemsize(dst.dtype()),
                                      cudaMemcpyDeviceToDevice, on.stream),
                      "shape ", shape_str(dst.shape()));
    return;
  }
  copy_kernels::run_copy(src, dst, on.stream, check_launch, kernels::variant_on("copy_transpose_tiles"));
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
  copy_kernels::run_fill(dst, bits, on.stream, check_launch);
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  OnDevice on(out, "where");
  on.check(cond, "where", "cond");
  on.check(a, "where", "a");
  on.check(b, "where", "b");
  copy_kernels::run_where(cond, a, b, out, on.stream, check_launch);
}

}  // namespace loom::cuda
