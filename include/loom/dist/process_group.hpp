// ProcessGroup: the collectives distributed training needs, over a set of ranks.
//
// Every collective works in place on contiguous CPU tensors and has an async
// form returning a Work handle; the blocking form is async + wait(). Ranks
// must issue the same collectives in the same order (as in MPI).
//
// Never hang: every wait has a deadline (ProcessGroup::timeout_s(), default
// 300 s or LOOM_DIST_TIMEOUT_S). A rank whose collective misses it prints
// "rank R: collective NAME #SEQ timed out after S s" and aborts the whole job
// with a non-zero exit code. This is why MPI is driven through non-blocking
// calls (MPI_Iallreduce, ...) polled with MPI_Test rather than the blocking
// ones, which cannot be interrupted.
//
// Threads: MPI is initialised MPI_THREAD_FUNNELED; only the thread that called
// init_distributed() may call collectives (checked, loom::Error otherwise).
//
// Backends: MpiProcessGroup (CPU tensors; src/dist/mpi_process_group.cpp),
// LocalProcessGroup (one rank, no MPI at run time) and, in CUDA builds with
// NCCL, the NCCL group for CUDA tensors (loom/dist/nccl_process_group.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "loom/core/tensor.hpp"

namespace loom::dist {

enum class ReduceOp { sum, avg, max };
const char* reduce_op_name(ReduceOp op);

// A pending collective. wait() blocks until it completes (or aborts the job at
// the deadline); is_completed() polls once. Both may be called repeatedly.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool is_completed() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

// Shard r of n elements split over `size` ranks: [r*n/size, (r+1)*n/size).
// Shards differ by at most one element; used by reduce_scatter.
struct ShardRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
ShardRange shard_range(int64_t n, int rank, int size);

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "local"

  // The collectives. Each bumps the version counter of the tensor it writes
  // (an in-place change: autograd's saved tensors and autocast's cached
  // casts of a parameter see it), then starts the backend's operation.
  //
  // t <- op over ranks of t. avg needs a floating dtype.
  WorkPtr all_reduce_async(const Tensor& t, ReduceOp op) { return start_all_reduce(written(t), op); }
  // out (numel size * in.numel(), same dtype) <- the ranks' `in` concatenated in rank order.
  WorkPtr all_gather_async(const Tensor& in, const Tensor& out) { return start_all_gather(in, written(out)); }
  // out <- shard rank() (see shard_range) of op over ranks of `in`; out.numel()
  // must equal that shard's size.
  WorkPtr reduce_scatter_async(const Tensor& in, const Tensor& out, ReduceOp op) {
    return start_reduce_scatter(in, written(out), op);
  }
  // t <- root's t.
  WorkPtr broadcast_async(const Tensor& t, int root) { return start_broadcast(written(t), root); }
  WorkPtr barrier_async() { return start_barrier(); }
  // Point to point; matched by (peer, tag) in order.
  WorkPtr send_async(const Tensor& t, int dst, int tag) { return start_send(t, dst, tag); }
  WorkPtr recv_async(const Tensor& t, int src, int tag) { return start_recv(written(t), src, tag); }

  // Ranks with the same color form a new group, ordered by (key, rank), as
  // MPI_Comm_split. Collective over this group. For a DP x TP grid:
  // tp = split(rank / tp_size, rank), dp = split(rank % tp_size, rank).
  virtual std::shared_ptr<ProcessGroup> split(int color, int key) = 0;

  // Stops every rank of the job now with `code` (MPI_Abort); never returns.
  [[noreturn]] virtual void abort(int code) = 0;

  // Blocking forms.
  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum) { all_reduce_async(t, op)->wait(); }
  void all_gather(const Tensor& in, const Tensor& out) { all_gather_async(in, out)->wait(); }
  void reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum) {
    reduce_scatter_async(in, out, op)->wait();
  }
  void broadcast(const Tensor& t, int root = 0) { broadcast_async(t, root)->wait(); }
  void barrier() { barrier_async()->wait(); }
  void send(const Tensor& t, int dst, int tag = 0) { send_async(t, dst, tag)->wait(); }
  void recv(const Tensor& t, int src, int tag = 0) { recv_async(t, src, tag)->wait(); }
  // root's `out` (numel size * in.numel(), same dtype) <- the ranks' `in`
  // concatenated in rank order; only root needs `out` (others may pass an
  // undefined tensor). Built from send/recv with tag kGatherTag, so only root
  // holds the whole result (unlike all_gather).
  void gather(const Tensor& in, const Tensor& out, int root = 0);
  static constexpr int kGatherTag = 0x6761;

  // The deadline of every wait, in seconds.
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double s) { timeout_s_ = s; }

 protected:
  ProcessGroup();
  // The backend's operations behind the public forms above.
  virtual WorkPtr start_all_reduce(const Tensor& t, ReduceOp op) = 0;
  virtual WorkPtr start_all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual WorkPtr start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) = 0;
  virtual WorkPtr start_broadcast(const Tensor& t, int root) = 0;
  virtual WorkPtr start_barrier() = 0;
  virtual WorkPtr start_send(const Tensor& t, int dst, int tag) = 0;
  virtual WorkPtr start_recv(const Tensor& t, int src, int tag) = 0;
  double timeout_s_;

 private:
  static const Tensor& written(const Tensor& t) {
    if (t.defined()) t.storage()->bump_version();
    return t;
  }
};
using ProcessGroupPtr = std::shared_ptr<ProcessGroup>;

// A group of one rank: reductions and broadcasts leave tensors as they are,
// gathers copy. Needs no MPI.
class LocalProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  WorkPtr start_all_reduce(const Tensor& t, ReduceOp op) override;
  WorkPtr start_all_gather(const Tensor& in, const Tensor& out) override;
  WorkPtr start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override;
  WorkPtr start_broadcast(const Tensor& t, int root) override;
  WorkPtr start_barrier() override;
  WorkPtr start_send(const Tensor& t, int dst, int tag) override;
  WorkPtr start_recv(const Tensor& t, int src, int tag) override;
  std::shared_ptr<ProcessGroup> split(int color, int key) override;
  [[noreturn]] void abort(int code) override;
};

// The world group. Under mpirun (OMPI_COMM_WORLD_SIZE is set) the first call
// runs MPI_Init_thread(FUNNELED) and returns an MPI group over
// MPI_COMM_WORLD (MPI_Finalize runs at exit); otherwise a LocalProcessGroup,
// and MPI is never touched. Later calls return the same group.
ProcessGroupPtr init_distributed();
// True when this process was started by mpirun (OMPI_COMM_WORLD_SIZE set).
bool launched_by_mpirun();
// The default deadline: LOOM_DIST_TIMEOUT_S when set (> 0), else 300 s.
double default_timeout_s();

}  // namespace loom::dist
