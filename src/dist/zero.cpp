// ZeRO-1 sharded AdamW (see loom/dist/zero.hpp).
#include "loom/dist/zero.hpp"

#include <cmath>
#include <map>

#include "kernels/backend.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/reduction.hpp"
#include "loom/ops/shape.hpp"

namespace loom::dist {

namespace {

constexpr const char* kSlots[] = {"exp_avg", "exp_avg_sq"};

// For each parameter overlapping the flat range [begin, begin + length):
// fn(index, offset in the parameter, offset in the range, count).
template <class Fn>
void for_each_piece(const std::vector<int64_t>& offsets, const std::vector<Tensor>& params, int64_t begin,
                    int64_t length, Fn&& fn) {
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t lo = std::max(begin, offsets[i]), hi = std::min(begin + length, offsets[i] + params[i].numel());
    if (lo < hi) fn(i, lo - offsets[i], lo - begin, hi - lo);
  }
}

}  // namespace

ZeroAdamW::ZeroAdamW(std::vector<optim::ParamGroup> groups, ProcessGroupPtr dp, optim::AdamWOptions options,
                     bool broadcast_from_rank0, ZeroTensorParallel tensor_parallel)
    : Optimizer(std::move(groups)), dp_(std::move(dp)), options_(options), tp_(std::move(tensor_parallel.tp)) {
  LOOM_CHECK(dp_ != nullptr, "ZeroAdamW: no process group");
  NoGradGuard no_grad;
  const int n = dp_->size();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const optim::ParamGroup& g = groups_[gi];
    Flat f;
    f.group = gi;
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      if (i == 0) f.dtype = p.dtype(), f.device = p.device();
      LOOM_CHECK(p.dtype() == f.dtype && p.device() == f.device, "rank ", dp_->rank(), ": ZeroAdamW: group '",
                 g.name, "' mixes dtypes or devices: parameter '", param_name(gi, i), "' is ", dtype_name(p.dtype()),
                 " ", shape_str(p.shape()), " on ", p.device().str(), ", the first is ", dtype_name(f.dtype), " on ",
                 f.device.str());
      if (broadcast_from_rank0) dp_->broadcast(p, 0);
      f.offsets.push_back(f.numel);
      f.numel += p.numel();
      f.tp_sharded.push_back(tensor_parallel.sharded.count(param_name(gi, i)) > 0);
    }
    f.shard = (f.numel + n - 1) / n;
    f.exp_avg = zeros({f.shard}, f.options());
    f.exp_avg_sq = zeros({f.shard}, f.options());
    flats_.push_back(std::move(f));
  }
}

std::string ZeroAdamW::name_of(const Flat& f, size_t index) const { return param_name(f.group, index); }

void ZeroAdamW::reduce_gradients() {
  if (reduced_) return;
  NoGradGuard no_grad;
  const int n = dp_->size();
  for (Flat& f : flats_) {
    if (f.numel == 0) continue;
    const optim::ParamGroup& g = groups_[f.group];
    Tensor grads = zeros({f.shard * n}, f.options());
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      LOOM_CHECK(p.grad().defined(), "rank ", dp_->rank(), ": ZeroAdamW: parameter '", name_of(f, i), "' ",
                 shape_str(p.shape()), " of group '", g.name, "' received no gradient in this step");
      grads.narrow(0, f.offsets[i], p.numel()).copy_(p.grad().reshape({p.numel()}));
    }
    f.grad = empty({f.shard}, f.options());
    dp_->reduce_scatter(grads, f.grad, ReduceOp::avg);
  }
  reduced_ = true;
}

double ZeroAdamW::grad_norm() {
  reduce_gradients();
  NoGradGuard no_grad;
  double sums[2] = {0, 0};  // squares of this rank's shards: [replicated over TP, split over TP]
  for (const Flat& f : flats_) {
    if (f.numel == 0) continue;
    const Tensor g = f.grad.to(DType::f64);
    for_each_piece(f.offsets, groups_[f.group].params, dp_->rank() * f.shard, f.shard,
                   [&](size_t i, int64_t, int64_t to, int64_t count) {
                     const Tensor piece = g.narrow(0, to, count);
                     sums[f.tp_sharded[i] ? 1 : 0] += sum(mul(piece, piece)).item<double>();
                   });
  }
  // On the parameters' device: a device group carries device tensors only.
  const Device device = flats_.empty() ? kCPU : flats_.front().device;
  Tensor total = from_vector(std::vector<double>{sums[0], sums[1]}, {2}).to(device);
  dp_->all_reduce(total, ReduceOp::sum);
  if (tp_ && tp_->size() > 1) {
    Tensor split = total.narrow(0, 1, 1).contiguous();
    tp_->all_reduce(split, ReduceOp::sum);
    total.narrow(0, 1, 1).copy_(split);
  }
  const auto t = total.to_vector<double>();
  return std::sqrt(t[0] + t[1]);
}

double ZeroAdamW::clip_grad_norm(double max_norm) {
  const double norm = grad_norm();
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  NoGradGuard no_grad;
  const double scale = max_norm / (norm + 1e-6);  // as optim::clip_grad_norm
  for (Flat& f : flats_)
    if (f.numel > 0) f.grad.mul_(scale);
  return norm;
}

void ZeroAdamW::step(double lr) {
  reduce_gradients();
  NoGradGuard no_grad;
  ++steps_;
  const int n = dp_->size(), r = dp_->rank();
  for (Flat& f : flats_) {
    if (f.numel == 0) continue;
    const optim::ParamGroup& g = groups_[f.group];
    Tensor mine = zeros({f.shard}, f.options());  // this rank's slice of the flat parameters
    for_each_piece(f.offsets, g.params, r * f.shard, f.shard, [&](size_t i, int64_t at, int64_t to, int64_t count) {
      mine.narrow(0, to, count).copy_(g.params[i].reshape({g.params[i].numel()}).narrow(0, at, count));
    });
    kernels::AdamWStep s{lr * g.lr_scale, options_.beta1, options_.beta2, options_.eps, g.weight_decay,
                         1.0 - std::pow(options_.beta1, static_cast<double>(steps_)),
                         1.0 - std::pow(options_.beta2, static_cast<double>(steps_))};
    // No bf16 copies here: the parameters' copy_ below bumps their versions,
    // and autocast casts them afresh.
    kernels::backend(mine.device()).adamw(mine, f.grad, f.exp_avg, f.exp_avg_sq, Tensor(), s);
    Tensor params = empty({f.shard * n}, f.options());
    dp_->all_gather(mine, params);
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor p = g.params[i];
      p.copy_(params.narrow(0, f.offsets[i], p.numel()).reshape(p.shape()));
    }
    f.grad = Tensor();
  }
  reduced_ = false;
}

void ZeroAdamW::zero_grad() {
  Optimizer::zero_grad();
  for (Flat& f : flats_) f.grad = Tensor();
  reduced_ = false;
}

nn::NamedTensors ZeroAdamW::state_tensors() const {
  NoGradGuard no_grad;
  const int n = dp_->size();
  const bool root = dp_->rank() == 0;
  nn::NamedTensors out;
  for (const Flat& f : flats_) {
    if (f.numel == 0) continue;
    Tensor all = root ? empty({n * 2 * f.shard}, f.options()) : Tensor();
    dp_->gather(cat({f.exp_avg, f.exp_avg_sq}), all, 0);
    if (!root) continue;
    // Rank r's piece is [exp_avg_r, exp_avg_sq_r]: regroup by slot.
    Tensor flat[2];
    for (int s = 0; s < 2; ++s) {
      std::vector<Tensor> pieces;
      for (int r = 0; r < n; ++r) pieces.push_back(all.narrow(0, (2 * r + s) * f.shard, f.shard));
      flat[s] = cat(pieces);
    }
    const optim::ParamGroup& g = groups_[f.group];
    for (size_t i = 0; i < g.params.size(); ++i)
      for (int s = 0; s < 2; ++s)
        out.emplace_back(name_of(f, i) + "." + kSlots[s],
                         flat[s].narrow(0, f.offsets[i], g.params[i].numel()).reshape(g.params[i].shape()).clone());
  }
  return out;
}

void ZeroAdamW::load_state(const nn::NamedTensors& tensors, const nlohmann::json& scalars) {
  NoGradGuard no_grad;
  const int r = dp_->rank();
  const int64_t steps = steps_of(scalars, "ZeroAdamW");
  std::map<std::string, std::pair<size_t, size_t>> where;  // name -> (flat, index)
  for (size_t fi = 0; fi < flats_.size(); ++fi)
    for (size_t i = 0; i < groups_[flats_[fi].group].params.size(); ++i) where[name_of(flats_[fi], i)] = {fi, i};
  for (Flat& f : flats_) {
    f.exp_avg.zero_();
    f.exp_avg_sq.zero_();
  }
  for (const auto& [key, t] : tensors) {
    const auto dot = key.rfind('.');
    LOOM_CHECK(dot != std::string::npos, "rank ", r, ": ZeroAdamW load_state: malformed key '", key, "'");
    const std::string param = key.substr(0, dot), slot = key.substr(dot + 1);
    LOOM_CHECK(slot == kSlots[0] || slot == kSlots[1], "rank ", r, ": ZeroAdamW load_state: '", key,
               "' is not AdamW state (expected <param>.exp_avg or <param>.exp_avg_sq)");
    auto it = where.find(param);
    LOOM_CHECK(it != where.end(), "rank ", r, ": ZeroAdamW load_state: state for unknown parameter '", param, "'");
    Flat& f = flats_[it->second.first];
    const Tensor& p = groups_[f.group].params[it->second.second];
    LOOM_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), "rank ", r, ": ZeroAdamW load_state: '", key,
               "' has ", shape_str(t.shape()), " ", dtype_name(t.dtype()), ", the parameter has ",
               shape_str(p.shape()), " ", dtype_name(p.dtype()));
    Tensor& dst = slot == kSlots[0] ? f.exp_avg : f.exp_avg_sq;
    const Tensor src = t.contiguous().reshape({t.numel()});
    const size_t index = it->second.second;
    for_each_piece(f.offsets, groups_[f.group].params, r * f.shard, f.shard,
                   [&](size_t i, int64_t at, int64_t to, int64_t count) {
                     if (i == index) dst.narrow(0, to, count).copy_(src.narrow(0, at, count));
                   });
  }
  steps_ = steps;
  for (Flat& f : flats_) f.grad = Tensor();
  reduced_ = false;
}

int64_t ZeroAdamW::state_numel() const {
  int64_t total = 0;
  for (const Flat& f : flats_) total += f.exp_avg.numel() + f.exp_avg_sq.numel();
  return total;
}

}  // namespace loom::dist
