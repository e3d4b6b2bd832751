// All-gather along dim 0 with a gradient, for losses that compare each
// rank's rows with the rows of every rank (contrastive learning across
// data-parallel ranks).
//
// Forward: [b, ...] on each rank -> [size * b, ...], rank r's rows at
// [r*b, (r+1)*b). Backward: the gradients of all ranks are summed and each
// rank keeps the rows of its own input. With each rank's loss a mean over
// its own rows and DataParallel averaging gradients, the update equals one
// process on the concatenated batch (tested in the dist label).
#pragma once

#include "loom/dist/process_group.hpp"

namespace loom::dist {

// Every rank must pass the same shape. A group of one returns x itself.
Tensor all_gather_rows(const Tensor& x, const ProcessGroupPtr& group);

}  // namespace loom::dist
