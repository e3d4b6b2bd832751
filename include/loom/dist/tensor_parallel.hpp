// Tensor parallelism (Megatron-LM style) over a ProcessGroup: the conjugate
// communication ops and vocab-parallel cross-entropy (tp_ops.hpp), parameter
// sharding and unsharded checkpoints (tp_sharding.hpp), and the parallel
// layers (tp_layers.hpp). See docs/distributed.md.
#pragma once
#include "loom/dist/tp_layers.hpp"
#include "loom/dist/tp_ops.hpp"
#include "loom/dist/tp_sharding.hpp"
