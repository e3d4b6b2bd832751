// MpiProcessGroup: ProcessGroup over an MPI communicator, for CPU tensors.
//
// Every collective is started with a non-blocking MPI call (MPI_Iallreduce,
// MPI_Iallgather, MPI_Ireduce_scatter, MPI_Ibcast, MPI_Ibarrier, MPI_Isend,
// MPI_Irecv) and waited on by polling MPI_Test against a deadline, so a rank
// that died or stalls makes the others abort the job (MPI_Abort) with a
// message naming the collective instead of hanging in a blocking call.
// MPI_Comm_split has no non-blocking form, so split() first passes a timed
// barrier: once every rank is there, the split itself cannot wait for a
// missing one.
#include "dist/mpi_world.hpp"

#if defined(LOOM_WITH_MPI)

// The C API only: the deprecated C++ bindings add nothing and warn.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom::dist::detail {
namespace {

std::thread::id g_mpi_thread;  // the thread that initialised MPI (FUNNELED)

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
    case DType::boolean: return MPI_UINT8_T;
    case DType::bf16:
    case DType::f16: return MPI_UINT16_T;  // moved as bits; reduced through a f32 copy
  }
  return MPI_BYTE;
}

void check_mpi(int rc, int rank, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  LOOM_FAIL("rank ", rank, ": ", what, " failed: ", std::string(text, static_cast<size_t>(len)));
}

// One pending request; `after` runs once on completion (avg's division).
class MpiWork : public Work {
 public:
  MpiWork(MPI_Request req, std::string name, int rank, double timeout_s, std::vector<Tensor> keep,
          std::function<void()> after)
      : req_(req), name_(std::move(name)), rank_(rank), timeout_s_(timeout_s), keep_(std::move(keep)),
        after_(std::move(after)) {}

  ~MpiWork() override {
    // A request dropped without wait() is still completed, so its buffers stay valid.
    if (!done_ && !std::uncaught_exceptions()) {
      try {
        wait();
      } catch (...) {
      }
    }
  }

  bool is_completed() override {
    if (done_) return true;
    check_thread();
    int flag = 0;
    check_mpi(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), rank_, "MPI_Test of " + name_);
    if (flag) complete();
    return done_;
  }

  void wait() override {
    if (done_) return;
    check_thread();
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_s_);
    int64_t polls = 0;
    while (!is_completed()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        std::fprintf(stderr, "rank %d: collective %s timed out after %g s; aborting the job\n", rank_, name_.c_str(),
                     timeout_s_);
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 3);
        std::_Exit(3);
      }
      // Non-blocking collectives progress only inside MPI calls, so keep
      // polling; yield so oversubscribed ranks leave the cores to the ones
      // doing work, and sleep only once the wait is long (a stalled peer).
      if (++polls > 1000) {
        if (now - start > std::chrono::seconds(1))
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        else
          std::this_thread::yield();
      }
    }
  }

 private:
  void check_thread() const {
    LOOM_CHECK(std::this_thread::get_id() == g_mpi_thread, "rank ", rank_, ": collective ", name_,
               " used from a thread other than the one that called init_distributed() (MPI_THREAD_FUNNELED)");
  }
  void complete() {
    done_ = true;
    if (after_) after_();
    keep_.clear();
  }

  MPI_Request req_;
  std::string name_;
  int rank_;
  double timeout_s_;
  std::vector<Tensor> keep_;
  std::function<void()> after_;
  bool done_ = false;
};

class MpiProcessGroup : public ProcessGroup {
 public:
  MpiProcessGroup(MPI_Comm comm, bool owns) : comm_(comm), owns_(owns) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiProcessGroup() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  WorkPtr start_all_reduce(const Tensor& t, ReduceOp op) override {
    const std::string name = describe("all_reduce", op, t);
    check_tensor(t, name);
    check_reduction(t.dtype(), op, name);
    const Tensor buf = reduction_buffer(t);
    MPI_Request req;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf.raw_data(), count(buf, name), mpi_type(buf.dtype()), mpi_op(op), comm_,
                             &req),
              rank_, name);
    return make_work(req, name, {t, buf}, finish(buf, t, op));
  }

  WorkPtr start_all_gather(const Tensor& in, const Tensor& out) override {
    const std::string name = describe("all_gather", std::nullopt, in);
    check_tensor(in, name);
    check_tensor(out, name);
    LOOM_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size_, "rank ", rank_, ": collective ", name,
               ": output has ", out.numel(), " ", dtype_name(out.dtype()), " elements, expected ", in.numel() * size_,
               " (", size_, " ranks x ", in.numel(), ")");
    MPI_Request req;
    const MPI_Datatype type = mpi_type(in.dtype());
    const int n = count(in, name);
    check_mpi(MPI_Iallgather(in.raw_data(), n, type, out.raw_data(), n, type, comm_, &req), rank_, name);
    return make_work(req, name, {in, out}, nullptr);
  }

  WorkPtr start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    const std::string name = describe("reduce_scatter", op, in);
    check_tensor(in, name);
    check_tensor(out, name);
    check_reduction(in.dtype(), op, name);
    const int64_t n = in.numel();
    count(in, name);
    std::vector<int> counts(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) counts[static_cast<size_t>(r)] = static_cast<int>(shard_range(n, r, size_).size());
    LOOM_CHECK(out.dtype() == in.dtype() && out.numel() == counts[static_cast<size_t>(rank_)], "rank ", rank_,
               ": collective ", name, ": output has ", out.numel(), " ", dtype_name(out.dtype()),
               " elements, this rank's shard of ", n, " over ", size_, " ranks has ", counts[static_cast<size_t>(rank_)]);
    const Tensor buf_in = reduction_buffer(in);
    const Tensor buf_out = is_half(out.dtype()) ? empty(out.shape(), TensorOptions(DType::f32)) : out;
    MPI_Request req;
    check_mpi(MPI_Ireduce_scatter(buf_in.raw_data(), buf_out.raw_data(), counts.data(), mpi_type(buf_in.dtype()),
                                  mpi_op(op), comm_, &req),
              rank_, name);
    return make_work(req, name, {in, out, buf_in, buf_out}, finish(buf_out, out, op));
  }

  WorkPtr start_broadcast(const Tensor& t, int root) override {
    const std::string name = describe("broadcast", std::nullopt, t) + " from " + std::to_string(root);
    check_tensor(t, name);
    check_peer(root, name);
    MPI_Request req;
    check_mpi(MPI_Ibcast(t.raw_data(), count(t, name), mpi_type(t.dtype()), root, comm_, &req), rank_, name);
    return make_work(req, name, {t}, nullptr);
  }

  WorkPtr start_barrier() override {
    const std::string name = "barrier #" + std::to_string(++seq_);
    MPI_Request req;
    check_mpi(MPI_Ibarrier(comm_, &req), rank_, name);
    return make_work(req, name, {}, nullptr);
  }

  WorkPtr start_send(const Tensor& t, int dst, int tag) override {
    const std::string name = describe("send", std::nullopt, t) + " to " + std::to_string(dst) + " tag " + std::to_string(tag);
    check_tensor(t, name);
    check_peer(dst, name);
    MPI_Request req;
    check_mpi(MPI_Isend(t.raw_data(), count(t, name), mpi_type(t.dtype()), dst, tag, comm_, &req), rank_, name);
    return make_work(req, name, {t}, nullptr);
  }

  WorkPtr start_recv(const Tensor& t, int src, int tag) override {
    const std::string name =
        describe("recv", std::nullopt, t) + " from " + std::to_string(src) + " tag " + std::to_string(tag);
    check_tensor(t, name);
    check_peer(src, name);
    MPI_Request req;
    check_mpi(MPI_Irecv(t.raw_data(), count(t, name), mpi_type(t.dtype()), src, tag, comm_, &req), rank_, name);
    return make_work(req, name, {t}, nullptr);
  }

  std::shared_ptr<ProcessGroup> split(int color, int key) override {
    LOOM_CHECK(color >= 0, "rank ", rank_, ": split: color ", color, " must be >= 0");
    barrier();  // timed: every rank is here, so MPI_Comm_split cannot hang on a missing one
    MPI_Comm sub;
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), rank_, "MPI_Comm_split");
    auto g = std::make_shared<MpiProcessGroup>(sub, true);
    g->set_timeout_s(timeout_s());
    return g;
  }

  void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  std::string describe(const char* what, std::optional<ReduceOp> op, const Tensor& t) {
    std::string s = what;
    if (op) s += std::string("(") + reduce_op_name(*op) + ")";
    s += " #" + std::to_string(++seq_);
    if (t.defined()) s += " of " + std::string(dtype_name(t.dtype())) + shape_str(t.shape());
    return s;
  }
  void check_tensor(const Tensor& t, const std::string& name) const {
    LOOM_CHECK(t.defined(), "rank ", rank_, ": collective ", name, ": undefined tensor");
    LOOM_CHECK(t.device().is_cpu(), "rank ", rank_, ": collective ", name, ": MpiProcessGroup needs CPU tensors");
    LOOM_CHECK(t.is_contiguous(), "rank ", rank_, ": collective ", name, ": the tensor must be contiguous");
  }
  void check_reduction(DType t, ReduceOp op, const std::string& name) const {
    LOOM_CHECK(op != ReduceOp::avg || is_floating(t), "rank ", rank_, ": collective ", name,
               ": avg needs a floating dtype, got ", dtype_name(t));
    LOOM_CHECK(op == ReduceOp::max || t != DType::boolean, "rank ", rank_, ": collective ", name,
               ": only max reduces bool tensors");
  }
  void check_peer(int peer, const std::string& name) const {
    LOOM_CHECK(peer >= 0 && peer < size_, "rank ", rank_, ": collective ", name, ": rank ", peer,
               " is outside the group of ", size_);
  }
  int count(const Tensor& t, const std::string& name) const {
    LOOM_CHECK(t.numel() <= INT_MAX, "rank ", rank_, ": collective ", name, ": ", t.numel(),
               " elements exceed MPI's int count");
    return static_cast<int>(t.numel());
  }
  static MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }
  // What MPI reduces: t itself, or for bf16/f16 (no MPI datatype) a f32 copy,
  // so that a sum neither rounds at every step nor overflows f16 on its way
  // to an average that fits.
  static Tensor reduction_buffer(const Tensor& t) {
    if (!is_half(t.dtype())) return t;
    NoGradGuard guard;
    return t.to(DType::f32);
  }
  // Runs once the reduction is done: avg's division (correctly rounded, not a
  // multiplication by 1/n), and the result rounded once into a half `dst`.
  std::function<void()> finish(const Tensor& buf, const Tensor& dst, ReduceOp op) const {
    const bool avg = op == ReduceOp::avg && size_ > 1, staged = !buf.is_same(dst);
    if (!avg && !staged) return nullptr;
    const double n = size_;
    return [buf, dst, avg, n] {
      NoGradGuard guard;
      Tensor(dst).copy_(avg ? div(buf, n) : buf);
    };
  }
  WorkPtr make_work(MPI_Request req, const std::string& name, std::vector<Tensor> keep, std::function<void()> after) {
    return std::make_shared<MpiWork>(req, name, rank_, timeout_s(), std::move(keep), std::move(after));
  }

  MPI_Comm comm_;
  bool owns_;
  int rank_ = 0;
  int size_ = 1;
  int64_t seq_ = 0;
};

void finalize_at_exit() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace

ProcessGroupPtr make_mpi_world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), -1, "MPI_Init_thread");
    LOOM_CHECK(provided >= MPI_THREAD_FUNNELED, "MPI_Init_thread: the MPI library provides thread level ", provided,
               ", loom needs MPI_THREAD_FUNNELED");
    std::atexit(finalize_at_exit);
  }
  g_mpi_thread = std::this_thread::get_id();
  return std::make_shared<MpiProcessGroup>(MPI_COMM_WORLD, false);
}

}  // namespace loom::dist::detail

#else  // built without MPI

namespace loom::dist::detail {
ProcessGroupPtr make_mpi_world() { return nullptr; }
}  // namespace loom::dist::detail

#endif
