#include "loom/omni/losses.hpp"

#include <algorithm>
#include <cmath>

#include "loom/autograd/grad_mode.hpp"
#include "loom/dist/gather.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

Tensor unit_rows(const Tensor& x) { return div(x, sqrt(add(sum(mul(x, x), {-1}, true), 1e-12))); }

Tensor temperature_scale(const Tensor& logit_scale) {
  return exp(clamp(logit_scale, std::nullopt, kMaxLogitScale));
}

namespace {

Tensor gathered(const Tensor& x, const dist::ProcessGroupPtr& group) {
  return group ? dist::all_gather_rows(x, group) : x;
}

}  // namespace

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target) {
  LOOM_CHECK(logits.dim() == 2 && logits.shape() == target.shape(), "soft_cross_entropy: logits ",
             shape_str(logits.shape()), " and target ", shape_str(target.shape()), " must be the same [N, C]");
  return neg(mean(sum(mul(target, log_softmax(logits, 1)), {1})));
}

Tensor info_nce(const Tensor& a, const Tensor& b, const Tensor& logit_scale, const Tensor& keys,
                const dist::ProcessGroupPtr& group) {
  LOOM_CHECK(a.dim() == 2 && a.shape() == b.shape(), "info_nce: embeddings ", shape_str(a.shape()), " and ",
             shape_str(b.shape()), " must be the same [b, E]");
  LOOM_CHECK(logit_scale.numel() == 1, "info_nce: logit_scale must be one value");
  const int64_t rows = a.size(0);
  LOOM_CHECK(!keys.defined() || (keys.dim() == 1 && keys.size(0) == rows && is_integral(keys.dtype())),
             "info_nce: keys must be integer [", rows, "]");
  const int rank = group ? group->rank() : 0;
  const Tensor an = unit_rows(a), bn = unit_rows(b);
  const Tensor a_all = gathered(an, group), b_all = gathered(bn, group);
  Tensor target;
  {
    NoGradGuard no_grad;
    Tensor own = keys.defined() ? to_dtype(keys, DType::i64).contiguous()
                                : arange(static_cast<double>(rank * rows), static_cast<double>((rank + 1) * rows),
                                         1.0, TensorOptions(DType::i64).with_device(a.device()));
    Tensor all = gathered(own, group);
    target = to_dtype(eq(own.unsqueeze(1), all.unsqueeze(0)), a.dtype());
    target = div(target, sum(target, {1}, true));
  }
  const Tensor scale = temperature_scale(logit_scale.reshape({}));
  const Tensor ab = mul(matmul(an, b_all.transpose(0, 1)), scale);
  const Tensor ba = mul(matmul(bn, a_all.transpose(0, 1)), scale);
  return mul(add(soft_cross_entropy(ab, target), soft_cross_entropy(ba, target)), 0.5);
}

Tensor hardest_negatives(const Tensor& sim, const Tensor& row_keys, const Tensor& col_keys) {
  LOOM_CHECK(sim.dim() == 2 && row_keys.numel() == sim.size(0) && col_keys.numel() == sim.size(1),
             "hardest_negatives: similarities ", shape_str(sim.shape()), " do not match keys ",
             shape_str(row_keys.shape()), " and ", shape_str(col_keys.shape()));
  NoGradGuard no_grad;
  // A host-side search: the similarities and keys come to the CPU.
  const Tensor s = to_dtype(sim.detach(), DType::f32).to(kCPU).contiguous();
  const Tensor rk = to_dtype(row_keys, DType::i64).to(kCPU).contiguous();
  const Tensor ck = to_dtype(col_keys, DType::i64).to(kCPU).contiguous();
  const int64_t n = sim.size(0), m = sim.size(1);
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = -1;
    for (int64_t j = 0; j < m; ++j) {
      if (ck.data<int64_t>()[j] == rk.data<int64_t>()[i]) continue;
      if (best < 0 || s.data<float>()[i * m + j] > s.data<float>()[i * m + best]) best = j;
    }
    out[i] = best < 0 ? std::min(i, m - 1) : best;
  }
  return from_vector(out, {n}).to(sim.device());
}

std::pair<Tensor, Tensor> mask_tokens(const Tensor& ids, double p, int64_t mask_id, int64_t first_special,
                                      Generator* gen) {
  LOOM_CHECK(ids.dim() == 2 && is_integral(ids.dtype()), "mask_tokens: ids must be integer [B, T]");
  LOOM_CHECK(ids.device().is_cpu(), "mask_tokens: ids must be on the CPU (masks are drawn on the host), got ",
             ids.device().str());
  NoGradGuard no_grad;
  const Tensor in = to_dtype(ids, DType::i64).contiguous();
  const Tensor choose = rand(in.shape(), {}, gen).contiguous(), how = rand(in.shape(), {}, gen).contiguous();
  const Tensor other = randint(0, first_special, in.shape(), DType::i64, gen).contiguous();
  Tensor inputs = in.clone(), targets = full(in.shape(), -100.0, DType::i64);
  int64_t* x = inputs.data<int64_t>();
  int64_t* y = targets.data<int64_t>();
  for (int64_t i = 0; i < in.numel(); ++i) {
    if (x[i] >= first_special || choose.data<float>()[i] >= p) continue;
    y[i] = x[i];
    const float h = how.data<float>()[i];
    x[i] = h < 0.8f ? mask_id : h < 0.9f ? other.data<int64_t>()[i] : x[i];
  }
  return {inputs, targets};
}

Tensor span_mask(const Tensor& valid, double p, int64_t span, Generator* gen) {
  LOOM_CHECK(valid.dim() == 2 && valid.dtype() == DType::boolean && span >= 1,
             "span_mask: valid must be bool [B, L] and span at least 1");
  LOOM_CHECK(valid.device().is_cpu(), "span_mask: valid must be on the CPU (spans are drawn on the host), got ",
             valid.device().str());
  NoGradGuard no_grad;
  const Tensor v = valid.contiguous(), u = rand(valid.shape(), {}, gen).contiguous();
  Tensor out = zeros(valid.shape(), DType::boolean);
  const int64_t b = valid.size(0), l = valid.size(1);
  const bool* vp = v.data<bool>();
  bool* op = out.data<bool>();
  for (int64_t r = 0; r < b; ++r)
    for (int64_t t = 0; t < l; ++t)
      if (vp[r * l + t] && u.data<float>()[r * l + t] < p / static_cast<double>(span))
        for (int64_t k = t; k < std::min(l, t + span); ++k) op[r * l + k] = vp[r * l + k];
  return out;
}

Tensor masked_mse(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  LOOM_CHECK(pred.dim() == 3 && pred.shape() == target.shape() && mask.dim() == 2 &&
                 mask.size(0) == pred.size(0) && mask.size(1) == pred.size(1),
             "masked_mse: pred ", shape_str(pred.shape()), ", target ", shape_str(target.shape()), " and mask ",
             shape_str(mask.shape()), " do not match");
  const Tensor m = to_dtype(mask, pred.dtype());
  const Tensor diff = sub(pred, target);
  const Tensor per_frame = mean(mul(diff, diff), {2});
  return div(sum(mul(per_frame, m)), clamp(sum(m), 1.0, std::nullopt));
}

}  // namespace loom::omni
