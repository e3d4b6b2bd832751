// The reduce entry of the CUDA table (kernels and floor in reduce.cuh).
#include "kernels.hpp"
#include "loops.cuh"
#include "reduce_args.hpp"

namespace loom::cuda {

void reduce(Reduce op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, const Tensor& out) {
  OnDevice on(out, "reduce");
  on.check(x, "reduce", "x");
  reduce_kernels::run(op, x, outer, r, inner, out, on.stream, check_launch);
}

}  // namespace loom::cuda
