// embedding and cross_entropy.
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/nn.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"
#include "loom/ops/autocast.hpp"
#include "ops/common.hpp"

namespace loom {

using ops::BackwardContext;

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_defined(weight, "embedding", "weight");
  ops::check_integer_index(ids, "embedding", "ids");
  LOOM_CHECK(weight.dim() == 2, "embedding: weight must be [num_embeddings, dim], got ", shape_str(weight.shape()));
  ops::check_index_range(ids, weight.size(0), "embedding");
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  return index_select(weight, 0, ids.reshape({-1})).reshape(out_shape);
}

namespace {

// Per-row losses [N] of logits [N, C]; its node turns d(loss_i) into d(logits)
// from the rows' log-sum-exp, saved by the forward. bf16 logits give f32
// losses: the kernels compute in f32 and write the logits' gradient in bf16,
// as casting first would give, without the cast's two passes over [N, C]
// each way.
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& targets, const kernels::CrossEntropyParams& p) {
  Tensor x = logits.contiguous().detach();
  const TensorOptions like = TensorOptions(is_half(x.dtype()) ? DType::f32 : x.dtype()).with_device(x.device());
  Tensor losses = empty({x.size(0)}, like), lse = empty({x.size(0)}, like);
  ops::kernels_for(x).cross_entropy(x, targets, losses, lse, p);
  return ops::record("cross_entropy", losses, {logits}, {x, targets, lse},
                     [p](const BackwardContext& ctx, const Tensor& g) {
                       Tensor x = ctx.saved(0);
                       Tensor grad = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
                       ops::kernels_for(x).cross_entropy_backward(x, ctx.saved(1), ctx.saved(2), g.contiguous(), grad,
                                                                  p);
                       return std::vector<Tensor>{grad};
                     });
}

// The loss in the rows' dtype (f32 for half logits).
Tensor reduced_cross_entropy(const Tensor& logits_in, const Tensor& targets_in, const CrossEntropyOptions& options) {
  // The kernels read bf16 logits as they are; f16 ones are widened first.
  if (logits_in.dtype() == DType::f16) return reduced_cross_entropy(logits_in.to(DType::f32), targets_in, options);
  ops::check_floating(logits_in, "cross_entropy");
  LOOM_CHECK(logits_in.dim() >= 1, "cross_entropy: logits must have a class dim, got ", shape_str(logits_in.shape()));
  Shape batch(logits_in.shape().begin(), logits_in.shape().end() - 1);
  LOOM_CHECK(targets_in.shape() == batch, "cross_entropy: targets ", shape_str(targets_in.shape()),
             " must have shape ", shape_str(batch), " for logits ", shape_str(logits_in.shape()));
  LOOM_CHECK(options.label_smoothing >= 0 && options.label_smoothing <= 1,
             "cross_entropy: label_smoothing must be in [0, 1], got ", options.label_smoothing);
  const int64_t classes = logits_in.size(-1);
  Tensor logits = logits_in.reshape({-1, classes});
  Tensor targets = targets_in.reshape({-1}).contiguous();
  kernels::CrossEntropyParams p{options.ignore_index, options.label_smoothing};
  Tensor rows = cross_entropy_rows(logits, targets, p);
  using R = CrossEntropyOptions::Reduction;
  if (options.reduction == R::none) return rows.reshape(batch);
  if (options.reduction == R::sum) return sum(rows);
  // The count of targets not ignored stays on their device: reading it back
  // would stall a device's stream once a step.
  const Tensor ignored = scalar_tensor(static_cast<double>(options.ignore_index),
                                       TensorOptions(targets.dtype()).with_device(targets.device()));
  const Tensor valid = sum(ne(targets, ignored).to(rows.dtype()));
  return div(sum(rows), valid);  // all ignored: 0/0 = NaN, as in PyTorch
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, const CrossEntropyOptions& options) {
  check_defined(logits_in, "cross_entropy", "logits");
  ops::check_integer_index(targets_in, "cross_entropy", "targets");
  const Tensor loss = reduced_cross_entropy(logits_in, targets_in, options);
  // Half logits give a loss in their dtype, or f32 under autocast (losses
  // run in f32 there); the rows are computed from the half logits either way.
  return is_half(logits_in.dtype()) && !autocast_enabled() ? loss.to(logits_in.dtype()) : loss;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_defined(x, "dropout", "x");
  LOOM_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, 0.0);
  LOOM_CHECK(is_floating(x.dtype()), "dropout: x must be floating, got ", dtype_name(x.dtype()));
  // The keep-mask scaled by 1/(1-p), drawn from the Philox stream as rand()
  // would draw it; the product's backward multiplies by the same mask.
  Tensor scale = empty(x.shape(), TensorOptions(x.dtype()).with_device(x.device()));
  const ops::DrawStart at = ops::reserve_draw(gen, scale.numel());
  ops::kernels_for(x).dropout_mask(scale, p, 1.0 / (1.0 - p), at.seed, at.block);
  return mul(x, scale);
}

}  // namespace loom
