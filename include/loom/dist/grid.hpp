// The DP x TP grid of a world: tensor-parallel groups of tp_size consecutive
// ranks ({0..tp-1}, {tp..2tp-1}, ...), and data-parallel groups of the ranks
// at the same position in theirs ({0, tp, 2tp, ...}, ...). Consecutive ranks
// usually share a host, where the TP collectives (several per layer) are
// cheapest; DP communicates once per step.
#pragma once

#include "loom/dist/process_group.hpp"

namespace loom::dist {

struct Grid {
  ProcessGroupPtr world, dp, tp;
  int tp_size() const { return tp->size(); }
  int dp_size() const { return dp->size(); }
};

// Collective over `world` (two splits; none when tp_size is 1 or the world
// size: the groups are then `world` itself and a LocalProcessGroup). Throws
// naming the sizes when the world does not divide into groups of tp_size.
Grid make_grid(const ProcessGroupPtr& world, int tp_size);

}  // namespace loom::dist
