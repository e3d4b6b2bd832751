#include "loom/dist/gather.hpp"

#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/ops/creation.hpp"

namespace loom::dist {

Tensor all_gather_rows(const Tensor& x, const ProcessGroupPtr& group) {
  LOOM_CHECK(group != nullptr, "all_gather_rows: no process group");
  LOOM_CHECK(x.defined() && x.dim() >= 1, "rank ", group->rank(), ": all_gather_rows needs a tensor with a batch dim");
  if (group->size() == 1) return x;
  const int n = group->size(), rank = group->rank();
  Tensor gathered;
  {
    NoGradGuard no_grad;
    Tensor local = x.contiguous();
    Shape shape = local.shape();
    shape[0] *= n;
    gathered = empty(shape, TensorOptions(local.dtype()).with_device(local.device()));
    group->all_gather(local.reshape({-1}), gathered.reshape({-1}));
  }
  ProcessGroupPtr g = group;
  const int64_t rows = x.size(0);
  return autograd::record("all_gather_rows", gathered, {x}, {},
                          [g, rank, rows](const autograd::BackwardContext&, const Tensor& grad) {
                            NoGradGuard no_grad;
                            Tensor summed = grad.contiguous().clone();
                            g->all_reduce(summed, ReduceOp::sum);
                            return std::vector<Tensor>{summed.narrow(0, rank * rows, rows).contiguous()};
                          });
}

}  // namespace loom::dist
