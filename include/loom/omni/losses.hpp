// The pretraining objectives of the omni-modal model, each a plain function
// of tensors so that it can be tested against an independent reference.
#pragma once

#include <utility>

#include "loom/core/random.hpp"
#include "loom/dist/process_group.hpp"

namespace loom::omni {

// x / ||x|| along the last dim (1e-12 added under the root): the unit
// embeddings every similarity in loom/omni compares.
Tensor unit_rows(const Tensor& x);

// CLIP's learnable temperature: logit_scale is log(1/T), initialised to
// log(1/0.07) and used as exp(min(logit_scale, log 100)).
inline constexpr double kInitLogitScale = 2.6592600367588116;  // log(1 / 0.07)
inline constexpr double kMaxLogitScale = 4.605170185988092;    // log(100)
Tensor temperature_scale(const Tensor& logit_scale);

// Symmetric InfoNCE between paired embeddings a [b, E] and b [b, E] (L2
// normalised here): the mean of the a->b and b->a cross-entropies over
// cosine-similarity logits times exp(logit_scale). keys (i64 [b], optional)
// name what each row shows: rows with equal keys are all positives of each
// other (the target spreads evenly over them), which keeps duplicate
// captions in a batch from being pushed apart. With a group of several
// ranks, the rows of every rank are gathered (with gradient) and each rank
// scores its own rows against all of them; the loss is the mean over its own
// rows, so averaged gradients equal one process on the concatenated batch.
Tensor info_nce(const Tensor& a, const Tensor& b, const Tensor& logit_scale, const Tensor& keys = Tensor(),
                const dist::ProcessGroupPtr& group = nullptr);

// Cross-entropy against a soft target distribution: mean over rows of
// -sum_j target[i, j] log_softmax(logits)[i, j].
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target);

// For each row of similarities sim [b, n], the column with the highest
// similarity whose key differs from the row's own (a hard negative); keys
// i64 [b] for the rows and [n] for the columns. A row with no such column
// gets its own index. No gradient.
Tensor hardest_negatives(const Tensor& sim, const Tensor& row_keys, const Tensor& col_keys);

// BERT-style masking of token ids [B, T]: each non-pad, non-special position
// (id < first_special) is chosen with probability p; chosen positions become
// mask_id (80%), a random token below first_special (10%) or stay (10%).
// Returns {inputs, targets}, targets -100 where not chosen.
std::pair<Tensor, Tensor> mask_tokens(const Tensor& ids, double p, int64_t mask_id, int64_t first_special,
                                      Generator* gen);

// Time masking for masked feature regression: bool [B, L], true on spans of
// `span` frames whose starts are drawn with probability p / span at valid
// frames (valid: bool [B, L]).
Tensor span_mask(const Tensor& valid, double p, int64_t span, Generator* gen);

// Mean squared error over the positions where mask (bool [B, L]) is true,
// averaged over the feature dim: pred, target [B, L, C]. Zero when nothing is masked.
Tensor masked_mse(const Tensor& pred, const Tensor& target, const Tensor& mask);

}  // namespace loom::omni
