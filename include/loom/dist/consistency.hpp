// Start-up consistency check: every rank must run the same recipe and the
// same model. Ranks hash what they were given (64-bit FNV-1a), all_gather the
// hashes and compare them with rank 0's; on a mismatch every rank throws the
// same loom::Error naming the ranks that differ and in what, so a job with a
// stale binary or a different --set on one host stops at once instead of
// training silently wrong (or hanging on mismatched collectives).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "loom/dist/process_group.hpp"
#include "loom/nn/module.hpp"

namespace loom::dist {

uint64_t fnv1a64(const std::string& text);

// The parameter and buffer names with their shapes and dtypes, one per line.
std::string model_signature(const nn::Module& model);

// items: (what, text) pairs, e.g. {"recipe", recipe.dump()}, {"model
// parameters", model_signature(m)}; every rank must pass the same number of
// items in the same order (the count itself is compared first).
void check_consistency(ProcessGroup& group, const std::vector<std::pair<std::string, std::string>>& items);

}  // namespace loom::dist
