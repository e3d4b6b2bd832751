// The trainer's data / tensor / ZeRO parallelism (see train/parallel.hpp).
#include "train/parallel.hpp"

#include <string>

#include "loom/dist/device_group.hpp"
#include "loom/dist/tp_grad_norm.hpp"
#include "loom/dist/tp_sharding.hpp"
#include "loom/ops/creation.hpp"

namespace loom::train {

Parallelism::Parallelism(const Json& recipe, dist::ProcessGroupPtr world, Device device) : device_(device) {
  const Json& d = recipe["dist"];
  const int n = world->size(), r = world->rank();
  const int64_t tp = d["tp_size"];
  LOOM_CHECK(tp >= 1 && n % tp == 0, "rank ", r, ": recipe: dist.tp_size ", tp,
             " must be at least 1 and divide the number of ranks, ", n);
  const bool zero = d["zero"];
  LOOM_CHECK(!zero || recipe["optim"]["name"] == "adamw", "rank ", r, ": recipe: dist.zero shards AdamW; optim.name is '",
             recipe["optim"]["name"].get<std::string>(), "'");
  // On CUDA devices the grid's groups carry device tensors (dist.backend:
  // NCCL, or host staging without it); the trainer keeps the MPI world for
  // host-side checks. A transport that cannot run fails here, on one rank too.
  const dist::DeviceTransport transport =
      dist::parse_device_transport(d["backend"], "rank " + std::to_string(r) + ": recipe: dist.backend");
  dist::check_device_transport(transport, device, r);
  if (device.is_cuda() && n > 1) world = dist::make_device_process_group(world, device, transport);
  grid_ = dist::make_grid(world, static_cast<int>(tp));
  zero_ = zero && grid_.dp_size() > 1;
}

TaskContext Parallelism::task_context(const std::string& run_dir, Device device) const {
  return TaskContext{run_dir, grid_.dp->rank(), grid_.dp_size(), tensor_parallel() ? grid_.tp : nullptr, device};
}

void Parallelism::check_model(const nn::Module& model, const std::string& kind) const {
  LOOM_CHECK(!tensor_parallel() || !dist::sharded_parameters(model).empty(), "rank ", grid_.world->rank(),
             ": recipe: dist.tp_size ", grid_.tp_size(), ": model.kind '", kind,
             "' has no tensor-parallel version (tensor parallelism exists for gpt)");
}

dist::ZeroTensorParallel Parallelism::zero_tensor_parallel(const nn::Module& model) const {
  if (!tensor_parallel()) return {};
  dist::ZeroTensorParallel z{grid_.tp, {}};
  for (const auto& [name, spec] : dist::sharded_parameters(model)) z.sharded.insert(name);
  return z;
}

void Parallelism::start(nn::Module& model) {
  if (!zero_ && grid_.dp_size() > 1) dp_ = std::make_unique<dist::DataParallel>(model, grid_.dp);
}

void Parallelism::backward(const Tensor& loss, bool last_micro_batch) {
  if (dp_ && !last_micro_batch) {
    auto no_sync = dp_->no_sync();  // accumulate locally; the last micro-batch communicates
    loss.backward();
  } else {
    loss.backward();
  }
}

void Parallelism::finish_step(double& loss_sum, int64_t& units) {
  if (dp_) dp_->finish();  // gradients averaged over the DP group (ZeroAdamW averages in its step)
  const int n = grid_.dp_size();
  if (n == 1) return;
  Tensor totals = from_vector(std::vector<double>{loss_sum, static_cast<double>(units)}, {2}).to(device_);
  grid_.dp->all_reduce(totals, dist::ReduceOp::sum);
  const auto t = totals.to_vector<double>();
  loss_sum = t[0] / n;  // the global average loss (TP peers hold the same one)
  units = static_cast<int64_t>(t[1]);
}

double Parallelism::clip_grad_norm(optim::Optimizer& optimizer, const nn::Module& model, double max_norm) {
  // ZeroAdamW: after its reduce-scatter, on the averaged shards (loom/dist/zero.hpp).
  if (tensor_parallel() && !zero_)
    return max_norm > 0 ? dist::tp_clip_grad_norm(model, *grid_.tp, max_norm) : dist::tp_grad_norm(model, *grid_.tp);
  return max_norm > 0 ? optimizer.clip_grad_norm(max_norm) : optimizer.grad_norm();
}

void Parallelism::collect_checkpoint(const nn::Module& model, const optim::Optimizer& optimizer,
                                     io::CheckpointContent& c) {
  // Rank 0's TP group (DP rank 0) assembles the unsharded tensors.
  const bool assembles = grid_.dp->rank() == 0;
  nn::NamedTensors state;
  if (zero_ || assembles) state = optimizer.state_tensors();  // ZeRO: a gather over DP, collective
  if (!assembles) return;
  if (tensor_parallel()) {
    c.weights = dist::full_state_dict(model, *grid_.tp);
    c.optimizer = dist::full_optimizer_state(model, state, *grid_.tp);
  } else {
    c.weights = model.state_dict();
    c.optimizer = std::move(state);
  }
}

void Parallelism::load_checkpoint(nn::Module& model, optim::Optimizer& optimizer, const io::CheckpointContent& c,
                                  const Json& optimizer_scalars) {
  if (tensor_parallel()) {
    dist::load_full_state_dict(model, c.weights, *grid_.tp);
    optimizer.load_state(dist::local_optimizer_state(model, c.optimizer, *grid_.tp), optimizer_scalars);
  } else {
    model.load_state_dict(c.weights);
    optimizer.load_state(c.optimizer, optimizer_scalars);
  }
}

std::string Parallelism::describe() const {
  return std::to_string(grid_.world->size()) + " ranks = data parallel " + std::to_string(grid_.dp_size()) +
         (zero_ ? " (ZeRO-1)" : "") + " x tensor parallel " + std::to_string(grid_.tp_size());
}

}  // namespace loom::train
