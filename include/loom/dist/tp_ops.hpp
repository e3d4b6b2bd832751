// Tensor-parallel communication as autograd ops (Megatron-LM's conjugate pairs).
//
// A tensor-parallel (TP) group holds one model replica split over its ranks.
// The activations crossing a split are moved by four differentiable ops whose
// backward is the forward of their conjugate:
//
//   copy_to_tp_region      (f)  forward identity          backward all-reduce(sum)
//   reduce_from_tp_region  (g)  forward all-reduce(sum)   backward identity
//   scatter_to_tp_region        forward own slice of the last dim   backward all-gather
//   gather_from_tp_region       forward all-gather along the last dim  backward own slice
//
// f sits before a column-parallel layer (each rank's input gradient is only
// its part of the sum), g after a row-parallel one (the partial products sum
// to the full output). Every rank of the group must call the same ops in the
// same order, forward and backward (the collectives are matched in order).
// The last dim must split evenly over the group (checked; the error names the
// rank and the shape).
//
// vocab_parallel_cross_entropy: the loss of logits split over the vocabulary,
// rank r holding classes [r*V/tp, (r+1)*V/tp). Three all-reduces of one value
// per row (max, sum of exp, target logit) replace gathering [N, V]; backward
// is local (softmax of the local columns minus the local one-hot).
#pragma once

#include "loom/core/tensor.hpp"
#include "loom/dist/process_group.hpp"

namespace loom::dist {

Tensor copy_to_tp_region(const Tensor& x, const ProcessGroupPtr& group);
Tensor reduce_from_tp_region(const Tensor& x, const ProcessGroupPtr& group);
Tensor scatter_to_tp_region(const Tensor& x, const ProcessGroupPtr& group);
Tensor gather_from_tp_region(const Tensor& x, const ProcessGroupPtr& group);

// local_logits [..., V/tp] (f32 or f64), targets [...] (i64/i32, the same on
// every rank of the group, in [0, V) or ignore_index). Returns the mean loss
// over the targets that are not ignored, equal on every rank.
Tensor vocab_parallel_cross_entropy(const Tensor& local_logits, const Tensor& targets, const ProcessGroupPtr& group,
                                    int64_t ignore_index = -100);

}  // namespace loom::dist
