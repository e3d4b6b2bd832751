#include "kernels/variants.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "loom/core/error.hpp"

namespace loom::kernels {

const std::vector<KernelVariant>& kernel_variants() {
  static const std::vector<KernelVariant> all = {
      {"cross_entropy_pack_rescale", "kernels ops", "cross_entropy",
       "the cross-entropy forward rescales its running sum once per 16-byte pack (the pack's maximum), "
       "not at every new maximum, with no branch per logit"},
      {"copy_transpose_tiles", "kernels ops", "copies",
       "a same-dtype copy whose two sides have their unit stride on different dims (a transpose) moves 32 x 32 "
       "tiles through shared memory, reading and writing coalesced"},
      {"norm_forward_prefetch", "kernels ops", "norms768",
       "the register-resident norm forward asks L2 for a warp's next row (x and the residual) before it "
       "reduces this one"},
      {"norm_backward_shared_sums", "kernels ops", "norms768",
       "the register-resident norm backward (a warp per row) keeps each warp's weight and bias column sums in "
       "shared memory instead of registers"},
      {"flash_forward_wgmma", "kernels ops", "attention",
       "the bf16 flash-attention forward at head dims 64 and 128 runs on Hopper's warpgroup products (wgmma, "
       "sm_90a builds on a 9.0 device), q, k and v read by the tensor cores from shared memory"},
      {"flash_forward_wgmma_overlap", "kernels ops", "attention",
       "flash_forward_wgmma with each key tile's q k^T issued beside the previous tile's P v, the softmax computed "
       "while P v runs (FlashAttention-3's pipelining within a warpgroup); on where both are named"},
  };
  return all;
}

namespace {

bool known(std::string_view name) {
  for (const KernelVariant& v : kernel_variants())
    if (name == v.name) return true;
  return false;
}

std::string known_names() {
  std::string out;
  for (const KernelVariant& v : kernel_variants()) {
    if (!out.empty()) out += ", ";
    out += v.name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::set<std::string> parse_kernel_variants(std::string_view list) {
  std::set<std::string> on;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string_view name = list.substr(start, comma - start);
    if (!name.empty()) {
      LOOM_CHECK(known(name), "LOOM_KERNEL_VARIANTS: unknown kernel variant '", std::string(name),
                 "' (this build has: ", known_names(), ")");
      on.emplace(name);
    }
    start = comma + 1;
  }
  return on;
}

bool variant_on(std::string_view name) {
  // Every registered name, and whether the environment turns it on: one
  // lookup a launch, no string built.
  static const std::map<std::string, bool, std::less<>> on = [] {
    const char* env = std::getenv("LOOM_KERNEL_VARIANTS");
    const std::set<std::string> listed = parse_kernel_variants(env ? env : "");
    std::map<std::string, bool, std::less<>> all;
    for (const KernelVariant& v : kernel_variants()) all.emplace(v.name, listed.count(v.name) > 0);
    return all;
  }();
  const auto it = on.find(name);
  LOOM_CHECK(it != on.end(), "variant_on: '", std::string(name), "' is not a registered kernel variant");
  return it->second;
}

}  // namespace loom::kernels
