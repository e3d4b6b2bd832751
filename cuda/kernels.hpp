// The CUDA implementations behind the CUDA row of the dispatch table
// (cuda/backend_cuda.cpp). Same contracts as src/cpu/kernels.hpp.
#pragma once

#include "kernels/backend.hpp"

namespace loom::cuda {
using namespace loom::kernels;

// copy.cu
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// elementwise.cu
void unary(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p);
void unary_backward(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                    const UnaryParams& p);
void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
void compare(Compare op, const Tensor& a, const Tensor& b, const Tensor& out);
// reduce.cu
void reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out);
// gemm.cpp (cuBLAS)
void gemm(const Tensor& a, const Tensor& b, const Tensor& out);
// softmax.cu
void softmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log);
void softmax_backward(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                      int64_t inner, bool log);
// norm.cu
void norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
          const Tensor& sum, const Tensor& mean, const Tensor& rstd, const NormShape& s);
void norm_backward(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                   const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                   const Tensor& grad_w, const Tensor& grad_b, const NormShape& s);
// loss.cu
void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                   const CrossEntropyParams& p);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& row_scale,
                            const Tensor& grad_logits, const CrossEntropyParams& p);
// index.cu
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void index_add(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x);
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add);
// random.cu
void uniform(const Tensor& out, uint64_t seed, uint64_t block);
void normal(const Tensor& out, uint64_t seed, uint64_t block);
void dropout_mask(const Tensor& out, double p, double scale, uint64_t seed, uint64_t block);
// conv.cu
void unfold2d(const Tensor& x, const Tensor& cols, const Window2d& w);
void fold2d(const Tensor& cols, const Tensor& x_grad, const Window2d& w);
// optimizer.cu
void adamw(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
           const Tensor& half_copy, const AdamWStep& s);
// flash_attention.cu
bool attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
               const Tensor& lse, const AttentionParams& p);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                        const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v, const AttentionParams& p);
// attention_cudnn.cpp (builds with cuDNN's frontend headers)
bool vendor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                      const Tensor& lse, const AttentionParams& p);
void vendor_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                               const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q,
                               const Tensor& grad_k, const Tensor& grad_v, const AttentionParams& p);
// multi_tensor.cu
bool adamw_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                 const std::vector<Tensor>& half_copies, const AdamWStep& s);
bool sum_squares(const std::vector<Tensor>& tensors, double* out);
// linear_epilogue.cpp (cuBLASLt)
bool linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearEpilogue e, const Tensor& out,
            const Tensor& pre);
bool linear_weight_grad(const Tensor& grad, const Tensor& x, const Tensor& grad_w, const Tensor& grad_b);
// spectrum_cufft.cpp
bool power_spectrum(const Tensor& frames, const Tensor& power);
// convolution_cudnn.cpp (builds with cuDNN)
bool convolution(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const Window2d& w,
                 Tensor* kept);
void convolution_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& kept,
                          const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b, const Window2d& w);

// "<op>: no CUDA kernel yet for <what>"
[[noreturn]] void no_kernel(const char* op, const std::string& what);

}  // namespace loom::cuda
