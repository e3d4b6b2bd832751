// Distributed training: process groups (MPI; NCCL for CUDA tensors), the
// start-up consistency check, data parallelism, ZeRO-1 and tensor
// parallelism. See docs/distributed.md.
#pragma once
#include "loom/dist/consistency.hpp"
#include "loom/dist/data_parallel.hpp"
#include "loom/dist/device_group.hpp"
#include "loom/dist/gather.hpp"
#include "loom/dist/nccl_process_group.hpp"
#include "loom/dist/process_group.hpp"
#include "loom/dist/tensor_parallel.hpp"
#include "loom/dist/zero.hpp"
