// Neural-network functions: activations over a dim, norms, embeddings,
// losses, dropout, convolutions and attention.
#pragma once

#include <vector>

#include "loom/core/random.hpp"
#include "loom/core/tensor.hpp"

namespace loom {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Normalises over the trailing dims whose sizes are `normalized_shape`.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                double eps = 1e-6);

// The residual add of a pre-norm transformer block fused with the norm that
// follows it: sum = x + residual, normed = layer_norm(sum) (or rms_norm). One
// pass over the rows each way instead of an add and a norm; both outputs are
// differentiable, and the backward adds the gradient that reached `sum`
// directly into the norm's input gradient in the same pass. x and residual
// must have one shape; their dtypes promote as in add(), but a half addend
// with an f32 (or f64) one is read as it is, without a cast: autocast's bf16
// branch on the f32 stream. Half sums (both operands bf16 or f16) take the
// unfused composition. `normed` is f32 under autocast, as PyTorch's norms;
// with normed_feeds_product (a pre-norm sublayer's input, whose first op is a
// product that would cast it anyway) it comes out in the autocast dtype
// instead, computed in f32 and rounded once.
struct ResidualNorm {
  Tensor sum;     // x + residual: the stream the block passes on
  Tensor normed;  // its normalisation: the input of the next sublayer
};
ResidualNorm residual_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                 const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), double eps = 1e-5,
                                 bool normed_feeds_product = false);
ResidualNorm residual_rms_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                               const Tensor& weight = Tensor(), double eps = 1e-6, bool normed_feeds_product = false);

// weight[num, dim] rows picked by integer `ids` of any shape -> [*ids.shape, dim].
Tensor embedding(const Tensor& weight, const Tensor& ids);

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  enum class Reduction { mean, sum, none } reduction = Reduction::mean;
};
// logits [N, C] (or [C]), integer targets [N]; mean over targets not ignored.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options = {});

// Zeroes each element with probability p (Philox stream of `gen`) and scales by 1/(1-p).
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

// x [N, C, L], weight [O, C, K] -> [N, O, L']
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
              int64_t padding = 0);
// x [N, C, H, W], weight [O, C, KH, KW] -> [N, O, H', W']
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0});
// The patches conv2d multiplies: [N, C*KH*KW, H'*W'].
Tensor unfold2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                std::vector<int64_t> padding);
// Non-overlapping p x p patches as rows: [N, C, H, W] -> [N, (H/p)*(W/p), C*p*p],
// patches in raster order, each row ordered (c, i, j) as a conv2d weight
// [O, C, p, p] flattens. H and W must be multiples of p. One copy.
Tensor patchify(const Tensor& x, int64_t patch);
// A ViT patch stem: conv2d with kernel = stride = p and no padding, as tokens:
// x [N, C, H, W], weight [O, C, p, p] -> [N, (H/p)*(W/p), O]. It runs as
// patchify and one GEMM with the bias in its epilogue, so the tokens come out
// contiguous and no convolution algorithm is involved.
Tensor patch_embed(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// softmax(q k^T * scale + mask) v over q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv].
// `mask`: bool, broadcastable to [..., Lq, Lk], true where attention is allowed
// (a key padding mask is [B, 1, 1, Lk]). `causal` lets query i see keys <= i.
// scale defaults to 1/sqrt(D).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask = Tensor(), bool causal = false, double scale = 0.0);

// Multi-head self-attention over a fused projection: qkv [B, T, 3·D] holds
// q, k and v side by side (D = heads · head dim); returns [B, T, D], the
// heads merged back. The same as splitting qkv, viewing each part as
// [B, heads, T, head dim], scaled_dot_product_attention and merging. Where
// the vendor's fused attention takes the call (cuDNN's on CUDA, under the
// automatic choice when a backward will run, or under `vendor`), it reads the
// heads inside qkv and writes the output and qkv's gradient in place: no
// head permutes, no split gradients.
Tensor self_attention(const Tensor& qkv, int64_t heads, const Tensor& mask = Tensor(), bool causal = false,
                      double scale = 0.0);

// The kernel scaled_dot_product_attention runs:
//   automatic  when a backward will run, the vendor's fused attention where
//              the backend has one and it takes the call (cuDNN's on CUDA:
//              bf16 and f16 without a key mask); else, and without a
//              backward, the backend's own fused kernel (flash attention on
//              CUDA; query blocks on the CPU, for causal calls, and for
//              unmasked ones of 2^28 scores or more); else the composition;
//   fused      the backend's own fused kernel, or an error;
//   vendor     a vendor library's fused attention (cuDNN's on CUDA), or an
//              error;
//   composed   matmul, mask, softmax, matmul (the [Lq, Lk] scores in memory).
enum class AttentionKernel { automatic, fused, vendor, composed };

// Sets this thread's attention kernel for the guard's lifetime (as
// torch.nn.attention.sdpa_kernel). The backward of an attention runs the
// kernel its forward ran.
class AttentionKernelGuard {
 public:
  explicit AttentionKernelGuard(AttentionKernel kernel);
  ~AttentionKernelGuard();
  AttentionKernelGuard(const AttentionKernelGuard&) = delete;
  AttentionKernelGuard& operator=(const AttentionKernelGuard&) = delete;

 private:
  AttentionKernel previous_;
};

AttentionKernel attention_kernel();  // this thread's choice (automatic unless guarded)
const char* attention_kernel_name(AttentionKernel kernel);

}  // namespace loom
