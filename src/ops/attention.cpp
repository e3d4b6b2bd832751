// Scaled dot-product attention: a fused kernel where the backend has one
// that takes the call (on CUDA cuDNN's when a backward will run, loom's
// flash attention otherwise or when cuDNN declines: no [Lq, Lk] scores in
// memory), otherwise composed from matmul, masking and softmax. All give the same result up to rounding; the composition is the
// reference the fused kernels are tested against. AttentionKernelGuard picks
// one explicitly.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

namespace {

thread_local AttentionKernel current_kernel = AttentionKernel::automatic;

// Contiguous and 16-byte aligned (a contiguous view may start mid-storage),
// detached: what the fused kernels read.
Tensor packed(const Tensor& t) {
  Tensor c = t.contiguous().detach();
  if (reinterpret_cast<uintptr_t>(c.raw_data()) % 16 != 0) c = c.clone().detach();
  return c;
}

// The forward and backward entries of the backend's own fused attention, or
// of the vendor's; usable only when the table has both.
struct AttentionEntries {
  decltype(kernels::Backend::attention) forward;
  decltype(kernels::Backend::attention_backward) backward;
  bool present() const { return forward != nullptr && backward != nullptr; }
};

AttentionEntries attention_entries(const kernels::Backend& table, bool vendor) {
  return vendor ? AttentionEntries{table.vendor_attention, table.vendor_attention_backward}
                : AttentionEntries{table.attention, table.attention_backward};
}

// The first of `candidates` (the vendor's fused kernel, the backend's own)
// that the backend has and that takes these inputs: one shared set of leading
// dims, a mask that only varies per key (padding), and one dtype after
// autocast. nullopt: compose instead.
std::optional<Tensor> fused_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask,
                                      bool causal, double scale, std::initializer_list<bool> candidates,
                                      bool required) {
  std::vector<AttentionEntries> tried;
  for (const bool vendor : candidates)
    if (AttentionEntries e = attention_entries(ops::kernels_for(q_in), vendor); e.present()) tried.push_back(e);
  if (tried.empty()) return std::nullopt;
  if (k_in.device() != q_in.device() || v_in.device() != q_in.device()) return std::nullopt;
  const Tensor q = ops::autocast_product_operand(q_in);
  const Tensor k = ops::autocast_product_operand(k_in);
  const Tensor v = ops::autocast_product_operand(v_in);
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) return std::nullopt;
  const Shape lead(q.shape().begin(), q.shape().end() - 2);
  if (Shape(k.shape().begin(), k.shape().end() - 2) != lead || v.size(-1) != q.size(-1)) return std::nullopt;
  const int64_t lq = q.size(-2), lk = k.size(-2), d = q.size(-1);
  int64_t bh = 1;
  for (int64_t n : lead) bh *= n;

  Tensor keep;
  if (mask.defined()) {
    if (mask.device() != q.device() || mask.dim() > q.dim() || (mask.dim() >= 2 && mask.size(-2) != 1))
      return std::nullopt;
    Shape scores_shape = lead;
    scores_shape.push_back(lq);
    scores_shape.push_back(lk);
    broadcast_shapes(mask.shape(), scores_shape, "attention mask");
    Shape keep_shape = lead;
    keep_shape.push_back(1);
    keep_shape.push_back(lk);
    keep = packed(ops::broadcast_view(mask, keep_shape)).reshape({bh, lk});
  }
  const Tensor q3 = packed(q).reshape({bh, lq, d});
  const Tensor k3 = packed(k).reshape({bh, lk, d});
  const Tensor v3 = packed(v).reshape({bh, lk, d});
  const TensorOptions on = TensorOptions(q.dtype()).with_device(q.device());
  Tensor out = empty({bh, lq, d}, on);
  Tensor lse = empty({bh, lq}, TensorOptions(DType::f32).with_device(q.device()));
  const kernels::AttentionParams params{causal, scale, required};
  const auto taker = std::find_if(tried.begin(), tried.end(), [&](const AttentionEntries& e) {
    return e.forward(q3, k3, v3, keep, out, lse, params);
  });
  if (taker == tried.end()) return std::nullopt;

  Shape out_shape = lead;
  out_shape.push_back(lq);
  out_shape.push_back(d);
  return ops::record("scaled_dot_product_attention", out.reshape(out_shape), {q, k, v},
                     {q3, k3, v3, out, lse, keep},
                     [params, backward = taker->backward, qs = q.shape(), ks = k.shape(),
                      vs = v.shape()](const ops::BackwardContext& ctx, const Tensor& g) {
                       const Tensor q3 = ctx.saved(0), k3 = ctx.saved(1), v3 = ctx.saved(2), keep = ctx.saved(5);
                       const Tensor grad_out = packed(g.to(q3.dtype())).reshape(q3.shape());
                       const TensorOptions on = TensorOptions(q3.dtype()).with_device(q3.device());
                       Tensor gq = empty(q3.shape(), on), gk = empty(k3.shape(), on), gv = empty(v3.shape(), on);
                       backward(q3, k3, v3, keep, ctx.saved(3), grad_out, ctx.saved(4), gq, gk, gv, params);
                       return std::vector<Tensor>{gq.reshape(qs), gk.reshape(ks), gv.reshape(vs)};
                     });
}

// Part `part` (0: q, 1: k, 2: v) of a [B, T, 3·D] buffer as [B, H, T, Dh].
Tensor head_view(const Tensor& qkv, int64_t heads, int64_t part) {
  const int64_t d = qkv.size(2) / 3;
  return qkv.reshape({qkv.size(0), qkv.size(1), 3, heads, d / heads}).select(2, part).transpose(1, 2);
}

// A [B, T, D] buffer as [B, H, T, Dh], and back.
Tensor split_heads(const Tensor& x, int64_t heads) {
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}
Tensor merge_heads(const Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// self_attention through the vendor's fused attention, reading q, k and v
// as [B, H, T, Dh] views of qkv [B, T, 3·D] and writing the output in
// [B, T, D] memory; nullopt when the backend has none or it declines.
std::optional<Tensor> vendor_self_attention(const Tensor& qkv_in, int64_t heads, bool causal, double scale) {
  const kernels::Backend& table = ops::kernels_for(qkv_in);
  const AttentionEntries vendor = attention_entries(table, true);
  if (!vendor.present()) return std::nullopt;
  const Tensor qkv = ops::autocast_product_operand(qkv_in);
  const Tensor packed_qkv = packed(qkv);
  const int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3;
  Tensor out = empty({b, t, d}, TensorOptions(qkv.dtype()).with_device(qkv.device()));
  Tensor lse = empty({b * heads * t}, TensorOptions(DType::f32).with_device(qkv.device()));
  const kernels::AttentionParams params{causal, scale, false};
  if (!vendor.forward(head_view(packed_qkv, heads, 0), head_view(packed_qkv, heads, 1),
                      head_view(packed_qkv, heads, 2), Tensor(), split_heads(out, heads), lse, params))
    return std::nullopt;
  return ops::record(
      "self_attention", out, {qkv}, {packed_qkv, out, lse},
      [heads, params, backward = vendor.backward](const ops::BackwardContext& ctx, const Tensor& g) {
        const Tensor saved_qkv = ctx.saved(0), saved_out = ctx.saved(1);
        const Tensor grad_out = packed(g.to(saved_out.dtype()));
        Tensor grad = empty(saved_qkv.shape(), TensorOptions(saved_qkv.dtype()).with_device(saved_qkv.device()));
        backward(head_view(saved_qkv, heads, 0), head_view(saved_qkv, heads, 1), head_view(saved_qkv, heads, 2),
                 Tensor(), split_heads(saved_out, heads), split_heads(grad_out, heads), ctx.saved(2),
                 head_view(grad, heads, 0), head_view(grad, heads, 1), head_view(grad, heads, 2), params);
        return std::vector<Tensor>{grad};
      });
}

}  // namespace

Tensor self_attention(const Tensor& qkv, int64_t heads, const Tensor& mask, bool causal, double scale) {
  check_defined(qkv, "self_attention", "qkv");
  LOOM_CHECK(heads > 0 && qkv.dim() == 3 && qkv.size(2) > 0 && qkv.size(2) % (3 * heads) == 0,
             "self_attention: qkv must be [B, T, 3 * D] with D a multiple of heads (", heads, "), got ",
             shape_str(qkv.shape()));
  const int64_t b = qkv.size(0), t = qkv.size(1), hd = qkv.size(2) / 3 / heads;
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(hd));
  const AttentionKernel kernel = current_kernel;
  const bool backward_wanted = grad_enabled() && qkv.requires_grad();
  if (!mask.defined() && t > 0 && b > 0 &&
      (kernel == AttentionKernel::vendor || (kernel == AttentionKernel::automatic && backward_wanted)))
    if (std::optional<Tensor> fused = vendor_self_attention(qkv, heads, causal, s)) return *fused;
  // The composition on the same head views; scaled_dot_product_attention
  // picks its kernel (and raises the error when the vendor's was asked for
  // and declines).
  return merge_heads(scaled_dot_product_attention(head_view(qkv, heads, 0), head_view(qkv, heads, 1),
                                                  head_view(qkv, heads, 2), mask, causal, s));
}

AttentionKernelGuard::AttentionKernelGuard(AttentionKernel kernel) : previous_(current_kernel) {
  current_kernel = kernel;
}
AttentionKernelGuard::~AttentionKernelGuard() { current_kernel = previous_; }
AttentionKernel attention_kernel() { return current_kernel; }

const char* attention_kernel_name(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::automatic: return "automatic";
    case AttentionKernel::fused: return "fused";
    case AttentionKernel::vendor: return "vendor";
    case AttentionKernel::composed: return "composed";
  }
  return "?";
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal,
                                    double scale) {
  check_defined(q, "attention", "q");
  check_defined(k, "attention", "k");
  check_defined(v, "attention", "v");
  LOOM_CHECK(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim() && q.size(-1) == k.size(-1) &&
                 k.size(-2) == v.size(-2),
             "attention: expected q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv], got ", shape_str(q.shape()), ", ",
             shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t lq = q.size(-2), lk = k.size(-2);
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  if (mask.defined())
    LOOM_CHECK(mask.dtype() == DType::boolean, "attention: mask must be bool (true = attend), got ",
               dtype_name(mask.dtype()));
  const AttentionKernel kernel = current_kernel;
  if (kernel == AttentionKernel::automatic) {
    // When a backward will run, the vendor's kernel first where the backend
    // has one (cuDNN's on CUDA ran 11 to 18 times faster than loom's flash
    // attention on an H200, docs/benchmarks.md), then loom's own; either may
    // decline the call. Without one (inference), loom's own: cuDNN builds a
    // graph for every new shape, tens of milliseconds, and decoding grows the
    // key length by one each token.
    const bool backward_wanted = grad_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
    std::optional<Tensor> fused = backward_wanted ? fused_attention(q, k, v, mask, causal, s, {true, false}, false)
                                                  : fused_attention(q, k, v, mask, causal, s, {false}, false);
    if (fused) return *fused;
  } else if (kernel != AttentionKernel::composed) {
    const bool vendor = kernel == AttentionKernel::vendor;
    if (std::optional<Tensor> fused = fused_attention(q, k, v, mask, causal, s, {vendor}, true)) return *fused;
    const bool has = attention_entries(ops::kernels_for(q), vendor).present();
    LOOM_FAIL("attention: the ", attention_kernel_name(kernel), " kernel was asked for (AttentionKernelGuard), but ",
              has ? "it does not take these inputs" : "the backend of " + q.device().str() + " has none",
              ": q ", dtype_name(q.dtype()), " ", shape_str(q.shape()), ", k ", dtype_name(k.dtype()), " ",
              shape_str(k.shape()), ", v ", dtype_name(v.dtype()), " ", shape_str(v.shape()),
              mask.defined() ? ", mask " + shape_str(mask.shape()) : std::string(), causal ? ", causal" : "");
  }
  Tensor scores = mul(matmul(q, k.transpose(-1, -2)), s);
  Tensor allowed;
  if (mask.defined()) {
    broadcast_shapes(mask.shape(), scores.shape(), "attention mask");
    allowed = mask;
  }
  if (causal) {
    // key j visible to query i when j <= i + (lk - lq): aligned at the end, as for a KV cache
    const TensorOptions index = TensorOptions(DType::i64).with_device(q.device());
    Tensor qi = arange(lq, index).reshape({lq, 1});
    Tensor kj = arange(lk, index).reshape({1, lk});
    Tensor causal_mask = le(kj, add(qi, static_cast<double>(lk - lq)));
    allowed = allowed.defined()
                  ? where(allowed, causal_mask, full({}, 0.0, TensorOptions(DType::boolean).with_device(q.device())))
                  : causal_mask;
  }
  if (allowed.defined()) scores = masked_fill(scores, logical_not(allowed), -INFINITY);
  return matmul(softmax(scores, -1), v);
}

}  // namespace loom
