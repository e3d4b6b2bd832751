// The CUDA backend's hand-written simt kernels (flash attention, the norms,
// softmax, cross-entropy, the multi-tensor AdamW and sum of squares) compiled
// for the host and run on the SIMT emulator of simt.cuh, for a
// cuda::HostEmulation created with EmulatedKernels::cpu_and_tiles: the fused
// paths of the ops and optimizers (argument packing, masks, autograd,
// autocast, batching) then run on machines without a GPU, through the very
// kernel source nvcc builds.
// Every CUDA thread is an OS thread here (from a pool), so this is for tests,
// not speed. The reductions (reduce.cuh) are tested on the emulator directly
// (tests/cuda/reduce_emulated_test.cpp) but left out of this table: a 256-
// thread block for every sum would more than double the emulated training
// tests' time.
#include <initializer_list>

#include "cross_entropy_args.hpp"
#include "flash_attention_args.hpp"
#include "multi_tensor_args.hpp"
#include "norm_args.hpp"
#include "softmax_args.hpp"

namespace loom::cuda {

namespace {

void check_one_device(std::initializer_list<const Tensor*> tensors, const char* op) {
  const Device device = (*tensors.begin())->device();
  for (const Tensor* t : tensors)
    LOOM_CHECK(!t->defined() || (t->device() == device && device.is_cuda()), op, ": a tensor on ",
               t->device().str(), " reached the emulated ", device.str(), " kernel");
}

void emulator_launch_status(int, const char*) {}  // the emulator faults loudly instead

bool emulated_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                        const Tensor& lse, const kernels::AttentionParams& p) {
  check_one_device({&q, &k, &v, &key_keep, &out, &lse}, "attention");
  return flash::run_forward(q, k, v, key_keep, out, lse, p, simt::kMaxSharedBytes, {}, emulator_launch_status,
                            flash::wgmma_forward_mode());
}

void emulated_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                                 const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q,
                                 const Tensor& grad_k, const Tensor& grad_v, const kernels::AttentionParams& p) {
  check_one_device({&q, &k, &v, &key_keep, &out, &grad_out, &lse, &grad_q, &grad_k, &grad_v}, "attention backward");
  flash::run_backward(q, k, v, key_keep, out, grad_out, lse, grad_q, grad_k, grad_v, p, simt::kMaxSharedBytes, {},
                      emulator_launch_status);
}

void emulated_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                   const Tensor& out, const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                   const kernels::NormShape& s) {
  check_one_device({&out, &x, &residual, &weight, &bias, &sum, &mean, &rstd}, norm_kernels::op_name(s, false));
  norm_kernels::run_forward(x, residual, weight, bias, out, sum, mean, rstd, s, {}, emulator_launch_status);
}

void emulated_norm_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                            const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                            const Tensor& grad_w, const Tensor& grad_b, const kernels::NormShape& s) {
  check_one_device({&x, &grad, &grad_sum, &weight, &mean, &rstd, &grad_x, &grad_x_half, &grad_w, &grad_b},
                   norm_kernels::op_name(s, true));
  norm_kernels::run_backward(grad, grad_sum, x, weight, mean, rstd, grad_x, grad_x_half, grad_w, grad_b, s, {},
                             emulator_launch_status);
}

void emulated_softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log) {
  check_one_device({&out, &x}, "softmax");
  softmax_kernels::run_forward(x, out, outer, r, inner, log, {}, emulator_launch_status);
}

void emulated_softmax_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                               int64_t inner, bool log) {
  check_one_device({&grad_in, &grad, &y}, "softmax backward");
  softmax_kernels::run_backward(grad, y, grad_in, outer, r, inner, log, {}, emulator_launch_status);
}

void emulated_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                            const kernels::CrossEntropyParams& p) {
  check_one_device({&logits, &targets, &losses, &lse}, "cross_entropy");
  cross_entropy_kernels::run_forward(logits, targets, losses, lse, p, {}, emulator_launch_status);
}

void emulated_cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                     const Tensor& row_scale, const Tensor& grad_logits,
                                     const kernels::CrossEntropyParams& p) {
  check_one_device({&logits, &targets, &lse, &row_scale, &grad_logits}, "cross_entropy backward");
  cross_entropy_kernels::run_backward(logits, targets, lse, row_scale, grad_logits, p, {}, emulator_launch_status);
}

bool emulated_adamw_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                          const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                          const std::vector<Tensor>& half_copies, const kernels::AdamWStep& s) {
  if (params.empty() || !params.front().device().is_cuda()) return false;
  return multi_tensor::adamw(params, grads, exp_avgs, exp_avg_sqs, half_copies, s, {}, emulator_launch_status);
}

bool emulated_sum_squares(const std::vector<Tensor>& tensors, double* out) {
  if (tensors.empty() || !tensors.front().device().is_cuda()) return false;
  return multi_tensor::sum_squares(tensors, out, {}, emulator_launch_status);
}

}  // namespace

void add_emulated_tile_kernels(kernels::Backend& table) {
  table.attention = emulated_attention;
  table.attention_backward = emulated_attention_backward;
  table.norm = emulated_norm;
  table.norm_backward = emulated_norm_backward;
  table.softmax = emulated_softmax;
  table.softmax_backward = emulated_softmax_backward;
  table.cross_entropy = emulated_cross_entropy;
  table.cross_entropy_backward = emulated_cross_entropy_backward;
  table.adamw_multi = emulated_adamw_multi;
  table.sum_squares = emulated_sum_squares;
}

}  // namespace loom::cuda
