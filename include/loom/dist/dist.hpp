// Distributed training: process groups (MPI; NCCL not yet), the start-up
// consistency check and data parallelism. See docs/distributed.md.
#pragma once
#include "loom/dist/consistency.hpp"
#include "loom/dist/data_parallel.hpp"
#include "loom/dist/gather.hpp"
#include "loom/dist/process_group.hpp"
#include "loom/dist/tensor_parallel.hpp"
#include "loom/dist/zero.hpp"
