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

namespace loom::dist {

namespace {

using autograd::BackwardContext;

// loss_i = log(s_i) + m_i - t_i (0 for ignored rows).
template <class T>
void finish_rows(const Tensor& m, const Tensor& s, const Tensor& t, const std::vector<int64_t>& targets,
                 int64_t ignore_index, Tensor& losses) {
  const T *pm = m.data<T>(), *ps = s.data<T>(), *pt = t.data<T>();
  T* out = losses.data<T>();
  for (size_t i = 0; i < targets.size(); ++i)
    out[i] = targets[i] == ignore_index ? T(0) : static_cast<T>(std::log(ps[i]) + pm[i] - pt[i]);
}

// The target logit where this rank holds the target column, else 0.
template <class T>
void pick_targets(const Tensor& x, const std::vector<int64_t>& targets, int64_t begin, Tensor& t) {
  const int64_t vl = x.size(1);
  const T* px = x.data<T>();
  T* pt = t.data<T>();
  for (size_t i = 0; i < targets.size(); ++i) {
    const int64_t c = targets[i] - begin;
    pt[i] = (c >= 0 && c < vl) ? px[static_cast<int64_t>(i) * vl + c] : T(0);
  }
}

// grad = g_i * (p_i - onehot_local(target_i)); zero rows for ignored targets.
template <class T>
void backward_rows(Tensor& grad, const Tensor& g, const Tensor& targets, int64_t begin, int64_t ignore_index) {
  const int64_t n = grad.size(0), vl = grad.size(1);
  T* pg = grad.data<T>();
  const T* go = g.data<T>();
  const int64_t* pt = targets.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    T* row = pg + i * vl;
    if (pt[i] == ignore_index) {
      for (int64_t j = 0; j < vl; ++j) row[j] = T(0);
      continue;
    }
    const int64_t c = pt[i] - begin;
    if (c >= 0 && c < vl) row[c] -= go[i];
  }
}

}  // namespace

Tensor vocab_parallel_cross_entropy(const Tensor& local_logits, const Tensor& targets_in, const ProcessGroupPtr& group,
                                    int64_t ignore_index) {
  LOOM_CHECK(group != nullptr, "vocab_parallel_cross_entropy: no process group");
  const int rank = group->rank(), size = group->size();
  LOOM_CHECK(local_logits.defined() && targets_in.defined(), "rank ", rank,
             ": vocab_parallel_cross_entropy: undefined logits or targets");
  LOOM_CHECK(local_logits.dtype() == DType::f32 || local_logits.dtype() == DType::f64, "rank ", rank,
             ": vocab_parallel_cross_entropy: logits must be f32 or f64, got ", dtype_name(local_logits.dtype()));
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

  Tensor losses, probs;
  {
    NoGradGuard no_grad;
    const TensorOptions opt(logits.dtype());
    Tensor x = logits.contiguous().detach();
    const int64_t n = x.size(0);
    Tensor m = amax(x, {1}).contiguous().clone();
    group->all_reduce(m, ReduceOp::max);  // 1: the row maxima
    Tensor e = exp(sub(x, m.unsqueeze(1)));
    Tensor s = sum(e, {1}).contiguous().clone();
    group->all_reduce(s, ReduceOp::sum);  // 2: the sums of exp
    Tensor t = zeros({n}, opt);
    if (x.dtype() == DType::f32) pick_targets<float>(x, tv, begin, t); else pick_targets<double>(x, tv, begin, t);
    group->all_reduce(t, ReduceOp::sum);  // 3: the target logits (held by exactly one rank)
    losses = empty({n}, opt);
    if (x.dtype() == DType::f32) finish_rows<float>(m, s, t, tv, ignore_index, losses);
    else finish_rows<double>(m, s, t, tv, ignore_index, losses);
    probs = div(e, s.unsqueeze(1)).contiguous();
  }
  Tensor rows = autograd::record(
      "vocab_parallel_cross_entropy", losses, {logits}, {probs, targets},
      [begin, ignore_index](const BackwardContext& ctx, const Tensor& g) {
        Tensor p = ctx.saved(0), t = ctx.saved(1);
        Tensor go = g.contiguous();
        Tensor grad = mul(p, go.unsqueeze(1)).contiguous();
        if (grad.dtype() == DType::f32) backward_rows<float>(grad, go, t, begin, ignore_index);
        else backward_rows<double>(grad, go, t, begin, ignore_index);
        return std::vector<Tensor>{grad};
      });
  return div(sum(rows), static_cast<double>(valid));
}

}  // namespace loom::dist
