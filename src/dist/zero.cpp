// ZeRO-1 sharded AdamW (see loom/dist/zero.hpp).
#include "loom/dist/zero.hpp"

#include <cmath>

#include "kernels/backend.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"

namespace loom::dist {

ZeroAdamW::ZeroAdamW(std::vector<optim::ParamGroup> groups, ProcessGroupPtr dp, optim::AdamWOptions options,
                     bool broadcast_from_rank0)
    : dp_(std::move(dp)), options_(options) {
  LOOM_CHECK(dp_ != nullptr, "ZeroAdamW: no process group");
  NoGradGuard no_grad;
  const int n = dp_->size();
  for (auto& g : groups) {
    Flat f;
    f.group = std::move(g);
    for (size_t i = 0; i < f.group.params.size(); ++i) {
      const Tensor& p = f.group.params[i];
      if (i == 0) f.dtype = p.dtype();
      LOOM_CHECK(p.dtype() == f.dtype && p.device().is_cpu(), "rank ", dp_->rank(), ": ZeroAdamW: group '",
                 f.group.name, "' mixes dtypes or devices: parameter ", i, " is ", dtype_name(p.dtype()), " ",
                 shape_str(p.shape()), ", the first is ", dtype_name(f.dtype));
      LOOM_CHECK(p.is_contiguous(), "rank ", dp_->rank(), ": ZeroAdamW: parameter ", i, " of group '", f.group.name, "' is not contiguous");
      if (broadcast_from_rank0) dp_->broadcast(p, 0);
      f.offsets.push_back(f.numel);
      f.numel += p.numel();
    }
    f.padded = (f.numel + n - 1) / n * n;
    f.exp_avg = zeros({f.padded / n}, f.dtype);
    f.exp_avg_sq = zeros({f.padded / n}, f.dtype);
    flats_.push_back(std::move(f));
  }
}

void ZeroAdamW::step(double lr) {
  NoGradGuard no_grad;
  ++steps_;
  const int n = dp_->size(), r = dp_->rank();
  for (Flat& f : flats_) {
    if (f.numel == 0) continue;
    const int64_t shard = f.padded / n;
    Tensor grads = zeros({f.padded}, f.dtype);
    Tensor params = zeros({f.padded}, f.dtype);
    for (size_t i = 0; i < f.group.params.size(); ++i) {
      const Tensor& p = f.group.params[i];
      const Tensor g = p.grad();
      const std::string name = i < f.group.names.size() ? f.group.names[i] : std::to_string(i);
      LOOM_CHECK(g.defined(), "rank ", r, ": ZeroAdamW: parameter '", name, "' ", shape_str(p.shape()),
                 " of group '", f.group.name, "' received no gradient in this step");
      grads.narrow(0, f.offsets[i], p.numel()).copy_(g.reshape({p.numel()}));
      params.narrow(0, f.offsets[i], p.numel()).copy_(p.reshape({p.numel()}));
    }
    Tensor my_grad = empty({shard}, f.dtype);
    dp_->reduce_scatter(grads, my_grad, ReduceOp::avg);
    Tensor my_param = params.narrow(0, r * shard, shard).contiguous().clone();
    kernels::AdamWStep s{lr * f.group.lr_scale, options_.beta1, options_.beta2, options_.eps, f.group.weight_decay,
                         1.0 - std::pow(options_.beta1, static_cast<double>(steps_)),
                         1.0 - std::pow(options_.beta2, static_cast<double>(steps_))};
    kernels::backend(my_param.device()).adamw(my_param, my_grad, f.exp_avg, f.exp_avg_sq, s);
    dp_->all_gather(my_param, params);
    for (size_t i = 0; i < f.group.params.size(); ++i) {
      Tensor p = f.group.params[i];
      p.copy_(params.narrow(0, f.offsets[i], p.numel()).reshape(p.shape()));
    }
  }
}

void ZeroAdamW::zero_grad() {
  for (Flat& f : flats_)
    for (Tensor& p : f.group.params) p.zero_grad();
}

int64_t ZeroAdamW::state_numel() const {
  int64_t total = 0;
  for (const Flat& f : flats_) total += f.exp_avg.numel() + f.exp_avg_sq.numel();
  return total;
}

}  // namespace loom::dist
