// check_consistency: all_gather of per-item hashes, compared with rank 0's.
#include "loom/dist/consistency.hpp"

#include <sstream>

#include "loom/ops/creation.hpp"

namespace loom::dist {

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string model_signature(const nn::Module& model) {
  std::ostringstream out;
  for (const auto& [name, t] : model.named_parameters()) out << "param " << name << ' ' << dtype_name(t.dtype()) << shape_str(t.shape()) << '\n';
  for (const auto& [name, t] : model.named_buffers()) out << "buffer " << name << ' ' << dtype_name(t.dtype()) << shape_str(t.shape()) << '\n';
  return out.str();
}

void check_consistency(ProcessGroup& group, const std::vector<std::pair<std::string, std::string>>& items) {
  const int n = group.size();
  if (n == 1) return;
  // Slot 0 is the item count, so ranks passing different lists are caught
  // before the per-item gathers could mismatch.
  const int64_t k = static_cast<int64_t>(items.size());
  Tensor count = from_vector(std::vector<int64_t>{k}, {1});
  Tensor counts = zeros({n}, DType::i64);
  group.all_gather(count, counts);
  const auto cv = counts.to_vector<int64_t>();
  for (int r = 0; r < n; ++r)
    LOOM_CHECK(cv[static_cast<size_t>(r)] == cv[0], "dist: consistency check: rank ", r, " checks ", cv[static_cast<size_t>(r)],
               " items, rank 0 checks ", cv[0]);
  std::vector<int64_t> mine;
  for (const auto& item : items) mine.push_back(static_cast<int64_t>(fnv1a64(item.second)));
  if (k == 0) return;
  Tensor all = zeros({n * k}, DType::i64);
  group.all_gather(from_vector(mine, {k}), all);
  const auto hv = all.to_vector<int64_t>();
  std::string diffs;
  for (int64_t i = 0; i < k; ++i) {
    for (int r = 1; r < n; ++r) {
      if (hv[static_cast<size_t>(r * k + i)] != hv[static_cast<size_t>(i)]) {
        if (!diffs.empty()) diffs += "; ";
        diffs += "rank " + std::to_string(r) + " differs from rank 0 in the " + items[static_cast<size_t>(i)].first;
      }
    }
  }
  LOOM_CHECK(diffs.empty(), "dist: ranks disagree at start-up (rank ", group.rank(), " reporting): ", diffs,
             "; every rank must run the same recipe, overrides and build");
}

}  // namespace loom::dist
