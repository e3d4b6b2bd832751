// Tensor parallelism (Megatron-LM style) over a ProcessGroup: the conjugate
// communication ops and vocab-parallel cross-entropy (tp_ops.hpp), parameter
// sharding and unsharded checkpoints (tp_sharding.hpp), the parallel layers
// (tp_layers.hpp), the global gradient norm (tp_grad_norm.hpp) and the
// DP x TP grid (grid.hpp). See docs/distributed.md.
#pragma once
#include "loom/dist/grid.hpp"
#include "loom/dist/tp_grad_norm.hpp"
#include "loom/dist/tp_layers.hpp"
#include "loom/dist/tp_ops.hpp"
#include "loom/dist/tp_sharding.hpp"
