// NcclProcessGroup: the ProcessGroup interface over NCCL, for CUDA tensors
// (one GPU per rank).
//
// Built when loom has the CUDA backend and CMake finds NCCL (nccl.h and
// libnccl under the CUDA toolkit or the system; cmake/nccl.cmake defines
// LOOM_WITH_NCCL). In other builds make_nccl_process_group() throws saying so
// and nccl_built() is false.
//
// Start-up: rank 0 of `bootstrap` (the MPI world, CPU tensors) creates the
// NCCL unique id and broadcasts it; every rank then joins the communicator on
// `device`. Collectives run on the group's own CUDA stream, ordered after the
// work loom already queued on the device (an event on loom's stream) and
// before what loom queues after wait() (which returns once the collective has
// finished).
//
// Never hang: the communicator is non-blocking (NCCL config blocking = 0), and
// every wait polls cudaEventQuery and ncclCommGetAsyncError against the
// group's deadline (timeout_s(), as the MPI group). An NCCL error or a missed
// deadline prints "rank R: collective NAME #SEQ ..." and calls ncclCommAbort,
// then aborts the whole job through `bootstrap` (MPI_Abort, exit status 3).
//
// Differences from MpiProcessGroup: tensors must be contiguous CUDA tensors on
// `device`; bf16 and f16 are reduced too; reduce_scatter needs an input that
// divides evenly over the ranks (ZeroAdamW pads to that); send/recv match in
// order per peer and ignore the tag; split() uses ncclCommSplit.
#pragma once

#include "loom/dist/process_group.hpp"

namespace loom::dist {

// Whether this build of loom has the NCCL group.
bool nccl_built();

// Collective over `bootstrap` (every rank passes its own device). Throws
// naming the rank when NCCL is not built in, the device is missing, or NCCL
// fails to start.
ProcessGroupPtr make_nccl_process_group(const ProcessGroupPtr& bootstrap, int device);

}  // namespace loom::dist
