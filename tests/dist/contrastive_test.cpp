// Contrastive learning across data-parallel ranks: each of W ranks holds its
// slice of a global batch, gathers the other ranks' embeddings with gradient
// (dist::all_gather_rows) and computes omni::info_nce over its own rows.
// Averaged over ranks, the loss and the gradients of the embeddings and of
// the temperature must equal one process on the concatenated batch (f64,
// 1e-9 relative), with and without duplicate keys in the batch.
#include <cmath>

#include <loom/loom.hpp>

#include "dist_check.hpp"

using namespace loom;

namespace {

constexpr int64_t kRowsPerRank = 3, kDim = 5;

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.contiguous().to_vector<double>(), y = b.contiguous().to_vector<double>();
  double worst = x.size() == y.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::abs(x[i] - y[i]) / std::max(1e-12, std::abs(y[i])));
  return worst;
}

void check(const dist::ProcessGroupPtr& world, bool duplicate_keys) {
  const int w = world->size(), r = world->rank();
  const int64_t n = kRowsPerRank * w;
  Generator gen(7);
  const Tensor a_full = randn({n, kDim}, DType::f64, &gen), b_full = randn({n, kDim}, DType::f64, &gen);
  std::vector<int64_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = duplicate_keys ? i % 4 : i;  // 4 distinct captions when duplicated
  const Tensor key_full = from_vector(keys, {n});

  // One process, the whole batch.
  Tensor a1 = a_full.clone().requires_grad_(), b1 = b_full.clone().requires_grad_();
  Tensor s1 = full({}, 2.0, DType::f64).requires_grad_();
  Tensor l1 = omni::info_nce(a1, b1, s1, key_full);
  l1.backward();

  // This rank's slice, gathered across ranks.
  Tensor a = a_full.narrow(0, r * kRowsPerRank, kRowsPerRank).clone().requires_grad_();
  Tensor b = b_full.narrow(0, r * kRowsPerRank, kRowsPerRank).clone().requires_grad_();
  Tensor s = full({}, 2.0, DType::f64).requires_grad_();
  Tensor l = omni::info_nce(a, b, s, key_full.narrow(0, r * kRowsPerRank, kRowsPerRank).contiguous(), world);
  l.backward();

  // Averages over ranks, as DataParallel would take them.
  Tensor loss = l.detach().clone(), scale_grad = s.grad().clone();
  world->all_reduce(loss, dist::ReduceOp::avg);
  world->all_reduce(scale_grad, dist::ReduceOp::avg);
  const char* what = duplicate_keys ? "duplicate keys" : "distinct keys";
  DCHECK(max_rel_diff(loss, l1.detach()) < 1e-9, what, ": loss ", loss.item<double>(), " vs ", l1.item<double>());
  DCHECK(max_rel_diff(scale_grad, s1.grad()) < 1e-9, what, ": temperature gradient");
  // Each rank's embedding gradients, averaged over ranks (DataParallel's
  // division by W), are its rows of the one-process gradient.
  const Tensor ga = div(a.grad(), static_cast<double>(w)), gb = div(b.grad(), static_cast<double>(w));
  DCHECK(max_rel_diff(ga, a1.grad().narrow(0, r * kRowsPerRank, kRowsPerRank)) < 1e-9, what, ": grad of a");
  DCHECK(max_rel_diff(gb, b1.grad().narrow(0, r * kRowsPerRank, kRowsPerRank)) < 1e-9, what, ": grad of b");
}

}  // namespace

int main() {
  return dist_test::run_checks("dist.contrastive", [](const dist::ProcessGroupPtr& world) {
    check(world, false);
    check(world, true);
  });
}
