// Internal: the MPI world group, or nullptr when loom is built without MPI.
#pragma once
#include "loom/dist/process_group.hpp"

namespace loom::dist::detail {
ProcessGroupPtr make_mpi_world();
}
