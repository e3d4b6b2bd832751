// The kernel dispatch table. Each backend (src/cpu, cuda/) fills one Backend
// with its implementations; ops look the table up once per call by device.
// Kernels do arithmetic only: no autograd, no allocation of user-visible
// tensors (outputs are passed in, already shaped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::kernels {

enum class Unary : uint8_t { neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, gelu_erf, gelu_tanh, silu, clamp, pow_scalar };
enum class Binary : uint8_t { add, sub, mul, div, pow, maximum, minimum };
enum class Compare : uint8_t { eq, ne, lt, le, gt, ge };
enum class Reduce : uint8_t { sum, max, argmax };

struct UnaryParams {
  double lo = 0, hi = 0;     // clamp bounds
  bool has_lo = false, has_hi = false;
  double exponent = 1;       // pow_scalar
};

struct NormShape {
  int64_t rows = 0, cols = 0;  // x viewed as [rows, cols], normalised along cols
  double eps = 1e-5;
  bool rms = false;            // RMSNorm: no mean subtraction, no bias
};

struct CrossEntropyParams {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

struct Window2d {
  int64_t kh, kw, sh, sw, ph, pw;
};

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

// Throws unless half_copy fits AdamW's contract with param (see `adamw`).
inline void check_adamw_half_copy(const Tensor& param, const Tensor& half_copy) {
  LOOM_CHECK(param.dtype() == DType::f32 && half_copy.dtype() == DType::bf16 && half_copy.is_contiguous() &&
                 half_copy.numel() == param.numel() && half_copy.device() == param.device(),
             "adamw: a half copy must be a contiguous bf16 tensor of an f32 parameter's size and device, got ",
             dtype_name(half_copy.dtype()), " ", shape_str(half_copy.shape()), " on ", half_copy.device().str(),
             " for ", dtype_name(param.dtype()), " ", shape_str(param.shape()), " on ", param.device().str());
}

// What a fused linear applies after the product: the bias, or the bias and
// then GELU in its tanh form (the one cuBLASLt's epilogue computes).
enum class LinearEpilogue : uint8_t { bias, bias_gelu_tanh };

struct AttentionParams {
  bool causal = false;  // key j visible to query i when j <= i + Lk - Lq
  double scale = 1.0;
  // The kernel was asked for by name (AttentionKernelGuard): take every call
  // it can. Otherwise an entry may also decline calls where the composition
  // is known to be faster.
  bool required = false;
};

struct Backend {
  // dst = src elementwise; same shape, any strides, any dtypes (converting).
  void (*copy)(const Tensor& src, const Tensor& dst);
  void (*fill)(const Tensor& dst, double value);
  // out (contiguous) = op(x)
  void (*unary)(Unary op, const Tensor& x, const Tensor& out, const UnaryParams& p);
  // grad_in (contiguous) = grad * op'(x); y = op(x) for ops whose derivative uses it.
  void (*unary_backward)(Unary op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& grad_in,
                         const UnaryParams& p);
  // a and b already broadcast (expanded) to out's shape; out contiguous.
  void (*binary)(Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
  void (*compare)(Compare op, const Tensor& a, const Tensor& b, const Tensor& out);
  void (*where)(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
  // x contiguous, viewed as [outer, r, inner]; out [outer, inner] (i64 for argmax).
  void (*reduce)(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out);
  // out[b] = a[b] . b[b]; a [B, M, K], b [B, K, N] with any strides, out contiguous [B, M, N].
  void (*gemm)(const Tensor& a, const Tensor& b, const Tensor& out);
  // x contiguous [outer, r, inner], softmax (or log_softmax) along r.
  void (*softmax)(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner, bool log);
  void (*softmax_backward)(const Tensor& grad, const Tensor& y, const Tensor& grad_in, int64_t outer, int64_t r,
                           int64_t inner, bool log);
  // Layer/RMS norm over contiguous x [rows, cols]; weight/bias optional [cols];
  // writes out and the per-row mean and rstd. With a residual (contiguous,
  // like x) the rows normalised are x + residual, which is also written to
  // `sum`: the residual add of a pre-norm block, fused. The arithmetic is in
  // mean's dtype T (f32 or f64), as are residual, sum, weight and bias; x and
  // out may also be half (a bf16 branch in, a bf16 product operand out).
  void (*norm)(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, const Tensor& out,
               const Tensor& sum, const Tensor& mean, const Tensor& rstd, const NormShape& s);
  // x is what was normalised (the sum, when fused), in T. grad_x = the
  // gradient through the norm, plus grad_sum when defined (the gradient that
  // reached the residual sum directly); grad_x_half, when defined, gets the
  // same rounded to its half dtype (for a half branch). grad may be half.
  void (*norm_backward)(const Tensor& grad, const Tensor& grad_sum, const Tensor& x, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_x_half,
                        const Tensor& grad_w, const Tensor& grad_b, const NormShape& s);
  // logits contiguous [N, C], integer targets [N] -> per-row losses [N] (0 where ignored) and
  // each row's log-sum-exp [N] in the logits' dtype, f32 for bf16 logits (any value where ignored),
  // kept for the backward; grad_logits in the logits' dtype, row_scale in the rows'.
  void (*cross_entropy)(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                        const CrossEntropyParams& p);
  // grad_logits = d(sum_i row_scale[i] * loss_i)/dlogits, from the forward's lse.
  void (*cross_entropy_backward)(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                 const Tensor& row_scale, const Tensor& grad_logits, const CrossEntropyParams& p);
  // Indexing along dim; index is i32/i64 (checked by the op before the call).
  void (*index_select)(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
  void (*index_add)(const Tensor& grad_out, int64_t dim, const Tensor& index, const Tensor& grad_x);
  void (*gather)(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
  // out is already a copy of x; writes (or adds) src at index along dim.
  void (*scatter)(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool add);
  // Philox draws into contiguous out starting at block `block`.
  void (*uniform)(const Tensor& out, uint64_t seed, uint64_t block);
  void (*normal)(const Tensor& out, uint64_t seed, uint64_t block);
  // Dropout's scaled keep-mask, drawn as `uniform` into contiguous floating
  // out: out[i] = scale where u_i >= p (both rounded to out's dtype), else 0.
  // Element for element where(rand(shape, dtype) >= p, scale, 0), in one pass.
  void (*dropout_mask)(const Tensor& out, double p, double scale, uint64_t seed, uint64_t block);
  // x [N, C, H, W] <-> cols [N, C*KH*KW, OH*OW]
  void (*unfold2d)(const Tensor& x, const Tensor& cols, const Window2d& w);
  void (*fold2d)(const Tensor& cols, const Tensor& x_grad, const Window2d& w);
  // One fused AdamW update of contiguous param, grad, exp_avg, exp_avg_sq (in
  // place). half_copy, when defined (f32 params only), is a contiguous bf16
  // tensor of param's size that receives the updated param rounded to bf16
  // (autocast's cached cast of the parameter, loom/ops/autocast.hpp).
  void (*adamw)(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& half_copy, const AdamWStep& s);

  // Optional fused kernels: null in a table without them, and an entry may
  // decline a call (return false, touching nothing) for dtypes or sizes it
  // does not take. The op then composes the same result from the entries
  // above.
  //
  // Attention over contiguous q [BH, Lq, D], k and v [BH, Lk, D], an optional
  // key_keep (bool [BH, Lk], true = visible): out [BH, Lq, D] and the row
  // log-sum-exp lse (f32 [BH, Lq]). Accepting a forward promises the backward
  // for the same tensors: grad_q, grad_k, grad_v (shaped like q, k, v) of
  // sum(out * grad_out).
  bool (*attention)(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                    const Tensor& lse, const AttentionParams& p) = nullptr;
  void (*attention_backward)(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                             const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q,
                             const Tensor& grad_k, const Tensor& grad_v, const AttentionParams& p) = nullptr;
  // One AdamW update of many tensors (equal-length lists; f32, contiguous,
  // one device) in as few launches as the backend can; half_copies as
  // adamw's half_copy, one per param, undefined where there is none.
  bool (*adamw_multi)(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                      const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                      const std::vector<Tensor>& half_copies, const AdamWStep& s) = nullptr;
  // *out = the sum of x² over every element of every tensor, accumulated in
  // double (the gradient norm), with one read back to the host.
  bool (*sum_squares)(const std::vector<Tensor>& tensors, double* out) = nullptr;
  // A linear layer with its epilogue in one pass: out [M, N] = x [M, K] .
  // weight [N, K]^T + bias [N], then GELU for bias_gelu_tanh, which also
  // writes pre [M, N] (the values GELU was applied to, for the backward).
  // Contiguous operands of one floating dtype; the bias is added (and GELU
  // applied) before the one rounding to a half output.
  bool (*linear)(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearEpilogue e, const Tensor& out,
                 const Tensor& pre) = nullptr;
  // A linear layer's parameter gradients in one pass: grad_w [N, K] =
  // grad [M, N]^T . x [M, K], grad_b [N] = grad summed over its rows. grad_w
  // and grad_b may be f32 for half grad and x (false when the backend
  // declines that).
  bool (*linear_weight_grad)(const Tensor& grad, const Tensor& x, const Tensor& grad_w, const Tensor& grad_b) = nullptr;
  // A 2-D convolution (cross-correlation, as conv2d) of contiguous x
  // [N, C, H, W] with weight [O, C, KH, KW], plus the optional bias [O]:
  // out [N, O, OH, OW]; out, grad and the gradients are contiguous. The
  // forward may set *kept to a tensor its backward wants back (the CPU's
  // im2col columns); it is handed to the backward as `kept`. Accepting a
  // forward promises the backward for the same tensors: grad_x, grad_w and
  // grad_b of sum(out * grad), each undefined when it is not wanted.
  bool (*convolution)(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                      const Window2d& w, Tensor* kept) = nullptr;
  void (*convolution_backward)(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& kept,
                               const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad_b,
                               const Window2d& w) = nullptr;
  // Power spectra of real frames: power [R, n / 2 + 1] = |rfft(frames)|² for
  // contiguous f32 frames [R, n], n a power of two (the log-mel's spectra).
  bool (*power_spectrum)(const Tensor& frames, const Tensor& power) = nullptr;
  // A vendor library's fused attention (cuDNN's on CUDA), with the contract
  // of `attention` above: the peer the backend's own kernel is tested and
  // timed against, taken only when asked for (AttentionKernelGuard).
  bool (*vendor_attention)(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                           const Tensor& out, const Tensor& lse, const AttentionParams& p) = nullptr;
  void (*vendor_attention_backward)(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                                    const Tensor& out, const Tensor& grad_out, const Tensor& lse,
                                    const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v,
                                    const AttentionParams& p) = nullptr;
};

// Every entry of Backend, for code that wraps a whole table (the device
// guards and the kernel profile in src/kernels/).
#define LOOM_BACKEND_ENTRIES(X)                                                                          \
  X(copy) X(fill) X(unary) X(unary_backward) X(binary) X(compare) X(where) X(reduce) X(gemm) X(softmax)    \
  X(softmax_backward) X(norm) X(norm_backward) X(cross_entropy) X(cross_entropy_backward) X(index_select)  \
  X(index_add) X(gather) X(scatter) X(uniform) X(normal) X(dropout_mask) X(unfold2d) X(fold2d) X(adamw)     \
  X(attention) X(attention_backward) X(adamw_multi) X(sum_squares) X(linear) X(linear_weight_grad)        \
  X(convolution) X(convolution_backward) X(power_spectrum) X(vendor_attention) X(vendor_attention_backward)

#define LOOM_COUNT_ENTRY(entry) +1
inline constexpr size_t kBackendEntries = 0 LOOM_BACKEND_ENTRIES(LOOM_COUNT_ENTRY);
#undef LOOM_COUNT_ENTRY
static_assert(sizeof(Backend) == kBackendEntries * sizeof(void (*)()),
              "LOOM_BACKEND_ENTRIES must list every entry of Backend");

// The operations' names, as error messages and the kernel profile print them.
inline const char* op_name(Unary op) {
  static const char* names[] = {"neg",     "exp",  "log",      "sqrt",      "rsqrt", "abs",   "tanh",
                                "sigmoid", "relu", "gelu",     "gelu_tanh", "silu",  "clamp", "pow"};
  return names[static_cast<int>(op)];
}
inline const char* op_name(Binary op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return names[static_cast<int>(op)];
}
inline const char* op_name(Compare op) {
  static const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}
inline const char* op_name(Reduce op) {
  static const char* names[] = {"sum", "max", "argmax"};
  return names[static_cast<int>(op)];
}

const Backend& backend(Device device);
void register_backend(DeviceType type, const Backend* table);

}  // namespace loom::kernels
