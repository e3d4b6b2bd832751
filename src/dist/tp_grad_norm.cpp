// The global gradient norm of a tensor-parallel model (see loom/dist/tp_grad_norm.hpp).
#include "loom/dist/tp_grad_norm.hpp"

#include <cmath>

#include "loom/autograd/grad_mode.hpp"
#include "loom/dist/tp_sharding.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/reduction.hpp"

namespace loom::dist {

double tp_grad_norm(const nn::Module& model, ProcessGroup& tp) {
  NoGradGuard no_grad;
  const auto specs = sharded_parameters(model);
  double sharded = 0, replicated = 0;
  Device device = kCPU;  // the gradients': a device group carries device tensors only
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p.grad().defined()) continue;
    device = p.grad().device();
    Tensor g = p.grad().to(DType::f64);
    (specs.count(name) ? sharded : replicated) += sum(mul(g, g)).item<double>();
  }
  Tensor total = from_vector(std::vector<double>{sharded}, {1}).to(device);
  tp.all_reduce(total, ReduceOp::sum);
  return std::sqrt(total.item<double>() + replicated);
}

double tp_clip_grad_norm(const nn::Module& model, ProcessGroup& tp, double max_norm) {
  const double norm = tp_grad_norm(model, tp);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  NoGradGuard no_grad;
  const double scale = max_norm / (norm + 1e-6);  // as optim::clip_grad_norm
  for (const auto& p : model.parameters())
    if (p.grad().defined()) p.grad().mul_(scale);
  return norm;
}

}  // namespace loom::dist
