// Gradient norm and clipping of a tensor-parallel model.
//
// Each rank holds a slice of the sharded parameters (dist::sharded_parameters)
// and a full copy of the replicated ones (norms, row-parallel biases, position
// embeddings), whose gradients are equal on every rank of the TP group. The
// global norm therefore sums the squares of the sharded gradients over the
// group (one all-reduce of a scalar) and counts the replicated ones once, so
// it equals optim::grad_norm of the TP=1 model (up to summation order) and is
// the same on every rank. Call it after the data-parallel average.
#pragma once

#include "loom/dist/process_group.hpp"
#include "loom/nn/module.hpp"

namespace loom::dist {

// Collective over tp. Parameters without a gradient are skipped.
double tp_grad_norm(const nn::Module& model, ProcessGroup& tp);
// Scales every gradient so that the global norm is at most max_norm; returns
// the norm before clipping (inf/nan when a gradient is not finite).
double tp_clip_grad_norm(const nn::Module& model, ProcessGroup& tp, double max_norm);

}  // namespace loom::dist
