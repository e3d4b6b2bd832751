// Scaled dot-product attention, composed from matmul, masking and softmax
// (the fused flash-style kernel is a backend optimisation of the same contract).
#include <cmath>

#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/linalg.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/shape.hpp"
#include "ops/common.hpp"

namespace loom {

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
  Tensor scores = mul(matmul(q, k.transpose(-1, -2)), s);
  Tensor allowed;
  if (mask.defined()) {
    LOOM_CHECK(mask.dtype() == DType::boolean, "attention: mask must be bool (true = attend), got ",
               dtype_name(mask.dtype()));
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
