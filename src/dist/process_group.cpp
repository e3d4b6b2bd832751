// The backend-independent parts of ProcessGroup: shard ranges, the default
// deadline, the one-rank LocalProcessGroup and init_distributed().
#include "loom/dist/process_group.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "dist/mpi_world.hpp"

namespace loom::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
  }
  return "?";
}

ShardRange shard_range(int64_t n, int rank, int size) {
  LOOM_CHECK(size > 0 && rank >= 0 && rank < size, "shard_range: rank ", rank, " outside a group of ", size);
  return {n * rank / size, n * (rank + 1) / size};
}

double default_timeout_s() {
  if (const char* s = std::getenv("LOOM_DIST_TIMEOUT_S")) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    LOOM_CHECK(end != s && *end == '\0' && v > 0, "LOOM_DIST_TIMEOUT_S='", s, "' is not a positive number of seconds");
    return v;
  }
  return 300.0;
}

ProcessGroup::ProcessGroup() : timeout_s_(default_timeout_s()) {}

void ProcessGroup::gather(const Tensor& in, const Tensor& out, int root) {
  const int n = size(), me = rank();
  LOOM_CHECK(root >= 0 && root < n, "rank ", me, ": gather to root ", root, " in a group of ", n, " ranks");
  check_defined(in, "gather", "in");
  LOOM_CHECK(in.is_contiguous(), "rank ", me, ": gather: the input ", shape_str(in.shape()), " is not contiguous");
  if (me != root) {
    send(in, root, kGatherTag);
    return;
  }
  const int64_t k = in.numel();
  check_defined(out, "gather", "out");
  LOOM_CHECK(out.is_contiguous() && out.numel() == n * k && out.dtype() == in.dtype(), "rank ", me,
             ": gather: the output must be a contiguous ", dtype_name(in.dtype()), " tensor of ", n * k,
             " elements, got ", dtype_name(out.dtype()), " ", shape_str(out.shape()));
  Tensor flat = Tensor(out).view({n * k});
  std::vector<WorkPtr> pending;
  for (int r = 0; r < n; ++r) {
    Tensor piece = flat.narrow(0, r * k, k);
    if (r == me) piece.copy_(in.reshape({k}));
    else pending.push_back(recv_async(piece, r, kGatherTag));
  }
  for (auto& w : pending) w->wait();
}

bool launched_by_mpirun() { return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr; }

namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool is_completed() override { return true; }
};

WorkPtr done() { return std::make_shared<DoneWork>(); }

void check_local(const Tensor& t, const char* collective) {
  check_defined(t, collective, "tensor");
  LOOM_CHECK(t.device().is_cpu(), "rank 0: collective ", collective, " needs a CPU tensor");
}

}  // namespace

WorkPtr LocalProcessGroup::start_all_reduce(const Tensor& t, ReduceOp op) {
  check_local(t, "all_reduce");
  LOOM_CHECK(op != ReduceOp::avg || is_floating(t.dtype()), "rank 0: collective all_reduce(avg) needs a floating dtype, got ",
             dtype_name(t.dtype()));
  return done();
}

WorkPtr LocalProcessGroup::start_all_gather(const Tensor& in, const Tensor& out) {
  check_local(in, "all_gather");
  check_local(out, "all_gather");
  LOOM_CHECK(out.numel() == in.numel() && out.dtype() == in.dtype(), "rank 0: collective all_gather: output has ",
             out.numel(), " ", dtype_name(out.dtype()), " elements, expected ", in.numel(), " ", dtype_name(in.dtype()));
  if (in.numel() > 0 && !in.is_same(out)) Tensor(out).view({out.numel()}).copy_(in.reshape({in.numel()}));
  return done();
}

WorkPtr LocalProcessGroup::start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) {
  (void)op;
  return all_gather_async(in, out);
}

WorkPtr LocalProcessGroup::start_broadcast(const Tensor& t, int root) {
  check_local(t, "broadcast");
  LOOM_CHECK(root == 0, "rank 0: collective broadcast from root ", root, " in a group of 1 rank");
  return done();
}

WorkPtr LocalProcessGroup::start_barrier() { return done(); }

WorkPtr LocalProcessGroup::start_send(const Tensor&, int dst, int) {
  LOOM_FAIL("rank 0: send to rank ", dst, " in a group of 1 rank (not launched by mpirun)");
}

WorkPtr LocalProcessGroup::start_recv(const Tensor&, int src, int) {
  LOOM_FAIL("rank 0: recv from rank ", src, " in a group of 1 rank (not launched by mpirun)");
}

std::shared_ptr<ProcessGroup> LocalProcessGroup::split(int, int) { return std::make_shared<LocalProcessGroup>(); }

void LocalProcessGroup::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

ProcessGroupPtr init_distributed() {
  static std::mutex mutex;
  static ProcessGroupPtr world;
  std::lock_guard<std::mutex> lock(mutex);
  if (world) return world;
  if (launched_by_mpirun()) {
    world = detail::make_mpi_world();
    LOOM_CHECK(world, "loom was started by mpirun (OMPI_COMM_WORLD_SIZE is set) but built without MPI (LOOM_MPI=OFF)");
  } else {
    world = std::make_shared<LocalProcessGroup>();
  }
  return world;
}

}  // namespace loom::dist
