// The tensor side of the multi-tensor kernels, shared by the device entries
// (multi_tensor.cu) and the host emulation (emulated_tiles.cpp): which lists
// the kernels take, and the launches. `stream` is the device's stream (or the
// emulator's); check(status, what) reports a failed launch.
#pragma once

#include <array>
#include <vector>

#include "kernels/backend.hpp"
#include "loom/ops/creation.hpp"
#include "multi_tensor.cuh"

namespace loom::multi_tensor {
inline namespace LOOM_SIMT_ABI {

// f32, contiguous, on the first tensor's device, each list as long as the
// first, with equal element counts across the lists.
inline bool takes(const std::vector<const std::vector<Tensor>*>& lists) {
  const std::vector<Tensor>& first = *lists.front();
  if (first.empty()) return false;
  const Device device = first.front().device();
  for (const std::vector<Tensor>* list : lists) {
    if (list->size() != first.size()) return false;
    for (size_t i = 0; i < list->size(); ++i) {
      const Tensor& t = (*list)[i];
      if (!t.defined() || t.dtype() != DType::f32 || !t.is_contiguous() || t.device() != device ||
          t.numel() != first[i].numel())
        return false;
    }
  }
  return true;
}

// half_copies: empty, or one per param, each undefined or a bf16 copy to
// write (kernels::Backend::adamw_multi).
template <class Check>
bool adamw(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& exp_avgs,
           const std::vector<Tensor>& exp_avg_sqs, const std::vector<Tensor>& half_copies,
           const kernels::AdamWStep& s, Stream stream, Check&& check) {
  if (!takes({&params, &grads, &exp_avgs, &exp_avg_sqs})) return false;
  if (!half_copies.empty() && half_copies.size() != params.size()) return false;
  for (size_t i = 0; i < half_copies.size(); ++i)
    if (half_copies[i].defined()) kernels::check_adamw_half_copy(params[i], half_copies[i]);
  const AdamWConsts c{static_cast<float>(s.beta1),
                      static_cast<float>(s.beta2),
                      static_cast<float>(1.0 - s.lr * s.weight_decay),
                      static_cast<float>(s.lr / s.bias_correction1),
                      static_cast<float>(1.0 / std::sqrt(s.bias_correction2)),
                      static_cast<float>(s.eps)};
  std::vector<std::array<void*, 5>> ptrs;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < params.size(); ++i) {
    void* half = i < half_copies.size() && half_copies[i].defined() ? half_copies[i].raw_data() : nullptr;
    ptrs.push_back(
        {params[i].raw_data(), grads[i].raw_data(), exp_avgs[i].raw_data(), exp_avg_sqs[i].raw_data(), half});
    sizes.push_back(params[i].numel());
  }
  for_each_batch<5>(ptrs, sizes, [&](const Batch<5>& b, int blocks) {
    check(launch(Dim3(static_cast<unsigned>(blocks)), Dim3(kThreads), 0, stream, adamw_kernel, b, c),
          "multi-tensor adamw");
  });
  return true;
}

template <class Check>
bool sum_squares(const std::vector<Tensor>& xs, double* out, Stream stream, Check&& check) {
  if (!takes({&xs})) return false;
  std::vector<std::array<void*, 1>> ptrs;
  std::vector<int64_t> sizes;
  int64_t blocks = 0;
  for (const Tensor& x : xs) {
    ptrs.push_back({x.raw_data()});
    sizes.push_back(x.numel());
    blocks += (x.numel() + kChunk - 1) / kChunk;
  }
  if (blocks == 0) {
    *out = 0.0;
    return true;
  }
  const TensorOptions f64 = TensorOptions(DType::f64).with_device(xs.front().device());
  Tensor partials = empty({blocks}, f64), total = empty({}, f64);
  double* partial_data = static_cast<double*>(partials.raw_data());
  for_each_batch<1>(ptrs, sizes, [&](const Batch<1>& b, int n) {
    check(launch(Dim3(static_cast<unsigned>(n)), Dim3(kThreads), kReduceSharedBytes, stream, sum_squares_kernel, b,
                 partial_data),
          "multi-tensor sum of squares");
  });
  check(launch(Dim3(1), Dim3(kThreads), kReduceSharedBytes, stream, sum_partials_kernel,
               static_cast<const double*>(partial_data), blocks, static_cast<double*>(total.raw_data())),
        "multi-tensor sum of squares (partials)");
  *out = total.item<double>();
  return true;
}

}  // namespace LOOM_SIMT_ABI
}  // namespace loom::multi_tensor
