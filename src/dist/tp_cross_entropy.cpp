// Cross-entropy over vocabulary-split logits without gathering them (see
// loom/dist/tp_ops.hpp). Per row: the global max, the global sum of
// exp(x - max) and the target's logit are each one all-reduce of [N]; the
// saved softmax of the local columns makes backward local.
#include <cmath>

#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/dist/tp_ops.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"

namespace loom::dist {

namespace {

using autograd::BackwardContext;

// Where each row's target sits in this rank's columns: the local column
// (clamped into range where another rank holds it) and whether it is here.
struct LocalTargets {
  Tensor column;  // i64 [N, 1]
  Tensor here;    // x's dtype [N]: 1 where this rank holds the target column
};
LocalTargets local_targets(const Tensor& targets, int64_t begin, int64_t vl, DType dtype) {
  const Tensor shifted = sub(targets, static_cast<double>(begin));
  const Tensor column = clamp(shifted, 0.0, static_cast<double>(vl - 1));
  return {column.unsqueeze(1), eq(column, shifted).to(dtype)};  // clamping left it alone: the column is here
}

}  // namespace

Tensor vocab_parallel_cross_entropy(const Tensor& local_logits, const Tensor& targets_in, const ProcessGroupPtr& group,
                                    int64_t ignore_index) {
  LOOM_CHECK(group != nullptr, "vocab_parallel_cross_entropy: no process group");
  const int rank = group->rank(), size = group->size();
  LOOM_CHECK(local_logits.defined() && targets_in.defined(), "rank ", rank,
             ": vocab_parallel_cross_entropy: undefined logits or targets");
  // Half logits (bf16 autocast's products) are widened: the loss and its
  // three all-reduces run in f32, as cross_entropy does; the cast's backward
  // returns the gradient in the logits' dtype.
  if (is_half(local_logits.dtype()))
    return vocab_parallel_cross_entropy(local_logits.to(DType::f32), targets_in, group, ignore_index);
  LOOM_CHECK(local_logits.dtype() == DType::f32 || local_logits.dtype() == DType::f64, "rank ", rank,
             ": vocab_parallel_cross_entropy: logits must be floating, got ", dtype_name(local_logits.dtype()));
  LOOM_CHECK(targets_in.dtype() == DType::i64 || targets_in.dtype() == DType::i32, "rank ", rank,
             ": vocab_parallel_cross_entropy: targets must be i64 or i32, got ", dtype_name(targets_in.dtype()));
  LOOM_CHECK(local_logits.dim() >= 1, "rank ", rank, ": vocab_parallel_cross_entropy: logits ",
             shape_str(local_logits.shape()), " have no class dim");
  Shape batch(local_logits.shape().begin(), local_logits.shape().end() - 1);
  LOOM_CHECK(targets_in.shape() == batch, "rank ", rank, ": vocab_parallel_cross_entropy: targets ",
             shape_str(targets_in.shape()), " must have shape ", shape_str(batch), " for local logits ",
             shape_str(local_logits.shape()));
  const int64_t vl = local_logits.size(-1), vocab = vl * size, begin = rank * vl;
  Tensor logits = local_logits.reshape({-1, vl});
  Tensor targets = targets_in.reshape({-1}).to(DType::i64).contiguous();
  const std::vector<int64_t> tv = targets.to_vector<int64_t>();
  int64_t valid = 0;
  for (size_t i = 0; i < tv.size(); ++i) {
    LOOM_CHECK(tv[i] == ignore_index || (tv[i] >= 0 && tv[i] < vocab), "rank ", rank,
               ": vocab_parallel_cross_entropy: target ", tv[i], " at row ", i, " is outside [0, ", vocab,
               ") (local logits ", shape_str(local_logits.shape()), " on ", size, " ranks)");
    valid += tv[i] != ignore_index;
  }

  // Everything below runs where the logits are (host or device), in ops.
  if (targets.device() != logits.device()) targets = targets.to(logits.device());
  const LocalTargets local = local_targets(targets, begin, vl, logits.dtype());
  const Tensor counted =
      ne(targets, full({}, static_cast<double>(ignore_index), TensorOptions(DType::i64).with_device(targets.device())))
          .to(logits.dtype());
  Tensor losses, probs;
  {
    NoGradGuard no_grad;
    Tensor x = logits.contiguous().detach();
    Tensor m = amax(x, {1}).contiguous().clone();
    group->all_reduce(m, ReduceOp::max);  // 1: the row maxima
    Tensor e = exp(sub(x, m.unsqueeze(1)));
    Tensor s = sum(e, {1}).contiguous().clone();
    group->all_reduce(s, ReduceOp::sum);  // 2: the sums of exp
    Tensor t = mul(gather(x, 1, local.column).squeeze(1), local.here).contiguous();
    group->all_reduce(t, ReduceOp::sum);  // 3: the target logits (held by exactly one rank)
    losses = mul(sub(add(log(s), m), t), counted);  // log(s) + m - t; 0 for ignored rows
    probs = div(e, s.unsqueeze(1)).contiguous();
  }
  Tensor rows = autograd::record(
      "vocab_parallel_cross_entropy", losses, {logits}, {probs, local.column, local.here, counted},
      [](const BackwardContext& ctx, const Tensor& g) {
        const Tensor p = ctx.saved(0), column = ctx.saved(1), here = ctx.saved(2), counted = ctx.saved(3);
        const Tensor go = mul(g.contiguous(), counted);  // ignored rows get no gradient
        // g_i * (p_i - onehot_local(target_i))
        Tensor grad = mul(p, go.unsqueeze(1));
        grad = scatter_add(grad, 1, column, neg(mul(go, here)).unsqueeze(1));
        return std::vector<Tensor>{grad};
      });
  return div(sum(rows), static_cast<double>(valid));
}

}  // namespace loom::dist
