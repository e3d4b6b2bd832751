// The kernel thread pool: one pool serves every CPU kernel. Its size comes
// from LOOM_NUM_THREADS when set, else the number of cores divided by the
// number of MPI ranks on this host (OMPI_COMM_WORLD_LOCAL_SIZE), at least 1.
// Idle workers sleep on a condition variable (no spinning), so loader threads
// and other processes on the same cores are not starved.
#pragma once

#include <cstdint>
#include <functional>

namespace loom {

int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default

// Runs fn(lo, hi) over [begin, end) split into at most num_threads() contiguous
// ranges of at least `grain` items; the caller takes part. Serial when the
// range is small, when there is one thread, or when called from inside a
// parallel_for. The first exception thrown by fn is rethrown here.
void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Within its scope, parallel_for on this thread runs serially. Background
// threads (data loader workers) use it so that they never queue for the pool
// behind, or in front of, the training step's kernels.
class SerialKernels {
 public:
  SerialKernels();
  ~SerialKernels();
  SerialKernels(const SerialKernels&) = delete;
  SerialKernels& operator=(const SerialKernels&) = delete;

 private:
  bool previous_;
};

}  // namespace loom
