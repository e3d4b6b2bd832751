// The conjugate tensor-parallel ops (see loom/dist/tp_ops.hpp).
#include "loom/dist/tp_ops.hpp"

#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/shape.hpp"

namespace loom::dist {

namespace {

using autograd::BackwardContext;

void check_input(const Tensor& x, const ProcessGroupPtr& group, const char* op) {
  LOOM_CHECK(group != nullptr, op, ": no process group");
  LOOM_CHECK(x.defined(), "rank ", group->rank(), ": ", op, ": undefined input");
  // Where x may live is the group's business: MPI takes host tensors, a
  // device group (NCCL or host staging) tensors on its device.
}

// A fresh contiguous sum over the group of x (x is not modified).
Tensor all_reduced(const Tensor& x, ProcessGroup& group) {
  NoGradGuard no_grad;
  Tensor out = x.contiguous().clone();
  group.all_reduce(out, ReduceOp::sum);
  return out;
}

void check_last_dim(const Tensor& x, int size, int rank, const char* op) {
  LOOM_CHECK(x.dim() >= 1, "rank ", rank, ": ", op, ": needs at least one dim, got ", shape_str(x.shape()));
  LOOM_CHECK(x.size(-1) % size == 0, "rank ", rank, ": ", op, ": last dim of ", shape_str(x.shape()),
             " does not split over ", size, " ranks");
}

// [..., k] on every rank -> [..., size*k], rank j's block at [j*k, (j+1)*k).
Tensor gather_last(const Tensor& x, ProcessGroup& group) {
  NoGradGuard no_grad;
  const int n = group.size();
  Tensor local = x.contiguous();
  Tensor buf = empty({n * local.numel()}, TensorOptions(local.dtype()).with_device(local.device()));
  group.all_gather(local.reshape({-1}), buf);
  Shape stacked{n};
  for (int64_t s : local.shape()) stacked.push_back(s);
  // [n, ..., k] -> [..., n, k] -> [..., n*k]
  std::vector<int64_t> perm;
  for (int64_t d = 1; d < local.dim(); ++d) perm.push_back(d);
  perm.push_back(0);
  perm.push_back(local.dim());
  Shape out_shape = local.shape();
  out_shape.back() *= n;
  return buf.reshape(stacked).permute(perm).contiguous().reshape(out_shape);
}

// This rank's block of the last dim, as a fresh contiguous tensor.
Tensor own_slice(const Tensor& x, int rank, int size) {
  NoGradGuard no_grad;
  const int64_t k = x.size(-1) / size;
  return x.narrow(x.dim() - 1, rank * k, k).contiguous().clone();
}

}  // namespace

Tensor copy_to_tp_region(const Tensor& x, const ProcessGroupPtr& group) {
  check_input(x, group, "copy_to_tp_region");
  if (group->size() == 1) return x;
  ProcessGroupPtr g = group;
  return autograd::record("copy_to_tp_region", x.detach(), {x}, {},
                          [g](const BackwardContext&, const Tensor& grad) {
                            return std::vector<Tensor>{all_reduced(grad, *g)};
                          });
}

Tensor reduce_from_tp_region(const Tensor& x, const ProcessGroupPtr& group) {
  check_input(x, group, "reduce_from_tp_region");
  if (group->size() == 1) return x;
  return autograd::record("reduce_from_tp_region", all_reduced(x, *group), {x}, {},
                          [](const BackwardContext&, const Tensor& grad) { return std::vector<Tensor>{grad}; });
}

Tensor scatter_to_tp_region(const Tensor& x, const ProcessGroupPtr& group) {
  check_input(x, group, "scatter_to_tp_region");
  if (group->size() == 1) return x;
  check_last_dim(x, group->size(), group->rank(), "scatter_to_tp_region");
  ProcessGroupPtr g = group;
  return autograd::record("scatter_to_tp_region", own_slice(x, g->rank(), g->size()), {x}, {},
                          [g](const BackwardContext&, const Tensor& grad) {
                            return std::vector<Tensor>{gather_last(grad, *g)};
                          });
}

Tensor gather_from_tp_region(const Tensor& x, const ProcessGroupPtr& group) {
  check_input(x, group, "gather_from_tp_region");
  if (group->size() == 1) return x;
  LOOM_CHECK(x.dim() >= 1, "rank ", group->rank(), ": gather_from_tp_region: needs at least one dim, got ",
             shape_str(x.shape()));
  ProcessGroupPtr g = group;
  return autograd::record("gather_from_tp_region", gather_last(x, *g), {x}, {},
                          [g](const BackwardContext&, const Tensor& grad) {
                            return std::vector<Tensor>{own_slice(grad, g->rank(), g->size())};
                          });
}

}  // namespace loom::dist
