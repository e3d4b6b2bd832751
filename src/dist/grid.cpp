// The DP x TP grid (see loom/dist/grid.hpp).
#include "loom/dist/grid.hpp"

namespace loom::dist {

Grid make_grid(const ProcessGroupPtr& world, int tp_size) {
  LOOM_CHECK(world != nullptr, "make_grid: no world group");
  const int n = world->size(), r = world->rank();
  LOOM_CHECK(tp_size >= 1 && n % tp_size == 0, "rank ", r, ": a world of ", n,
             " ranks does not split into tensor-parallel groups of ", tp_size);
  if (tp_size == 1) return {world, world, std::make_shared<LocalProcessGroup>()};
  if (tp_size == n) return {world, std::make_shared<LocalProcessGroup>(), world};
  auto tp = world->split(r / tp_size, r);
  auto dp = world->split(r % tp_size, r);
  return {world, dp, tp};
}

}  // namespace loom::dist
