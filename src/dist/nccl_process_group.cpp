// NcclProcessGroup: ProcessGroup over NCCL for CUDA tensors (see
// loom/dist/nccl_process_group.hpp). The NCCL code is compiled only with
// LOOM_WITH_NCCL (cmake/nccl.cmake); other builds get the stubs at the end.
#include "loom/dist/nccl_process_group.hpp"

#if LOOM_WITH_NCCL

#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "../../cuda/runtime.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/core/cuda.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"

namespace loom::dist {

namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8:
    case DType::boolean: return ncclUint8;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
  }
  return ncclUint8;
}

// avg is a sum followed by a correctly rounded division, as in the MPI group.
ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::max ? ncclMax : ncclSum; }

// One communicator with its stream; shared by the group and its pending work.
struct Comm {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int rank = 0, size = 1, device = 0;
  ProcessGroupPtr bootstrap;  // aborts the whole job (MPI_Abort)

  ~Comm() {
    if (comm != nullptr) ncclCommDestroy(comm);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  // Prints why, aborts the communicator (so no kernel waits for a missing
  // peer forever) and ends every rank of the job.
  [[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "rank %d: %s; aborting the job\n", rank, what.c_str());
    std::fflush(stderr);
    if (comm != nullptr) ncclCommAbort(comm);
    comm = nullptr;
    bootstrap->abort(3);
    std::_Exit(3);  // not reached: abort ends the process
  }

  // The communicator's asynchronous state: ncclSuccess, ncclInProgress (a
  // non-blocking call still running), or an error, which ends the job.
  ncclResult_t poll(const std::string& what) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(comm, &state);
    if (rc != ncclSuccess) state = rc;
    if (state != ncclSuccess && state != ncclInProgress)
      fail(what + " failed: " + ncclGetErrorString(state) + " (" + ncclGetLastError(comm) + ")");
    return state;
  }

  // Waits until no non-blocking NCCL call is in progress, within timeout_s.
  void settle(const std::string& what, double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (poll(what) == ncclInProgress) {
      if (Clock::now() >= deadline) fail(what + " timed out after " + std::to_string(timeout_s) + " s");
      std::this_thread::yield();
    }
  }
};

// Starts the communicator of `c` from its unique id (non-blocking config)
// and creates its stream.
void init_comm(Comm& c, ncclUniqueId id, double timeout_s) {
  cuda::DeviceGuard guard(c.device);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t rc = ncclCommInitRankConfig(&c.comm, c.size, id, c.rank, &config);
  LOOM_CHECK(rc == ncclSuccess || rc == ncclInProgress, "rank ", c.rank, ": ncclCommInitRankConfig on cuda:",
             c.device, " failed: ", ncclGetErrorString(rc));
  c.settle("ncclCommInitRankConfig", timeout_s);
  LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "rank ", c.rank);
}

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<Comm> comm, std::string name, double timeout_s, cudaEvent_t done,
           std::vector<Tensor> keep, std::function<void()> after)
      : comm_(std::move(comm)), name_(std::move(name)), timeout_s_(timeout_s), done_event_(done),
        keep_(std::move(keep)), after_(std::move(after)) {}

  ~NcclWork() override {
    // A handle dropped without wait() still completes, so its buffers stay valid.
    if (!done_ && !std::uncaught_exceptions()) {
      try {
        wait();
      } catch (...) {
      }
    }
    cudaEventDestroy(done_event_);
  }

  bool is_completed() override {
    if (done_) return true;
    const cudaError_t e = cudaEventQuery(done_event_);
    if (e == cudaSuccess) {
      complete();
      return true;
    }
    if (e != cudaErrorNotReady) LOOM_CUDA_CHECK(e, "rank ", comm_->rank, ": collective ", name_);
    comm_->poll("collective " + name_);
    return false;
  }

  void wait() override {
    if (done_) return;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_s_);
    while (!is_completed()) {
      const auto now = Clock::now();
      if (now >= deadline)
        comm_->fail("collective " + name_ + " timed out after " + std::to_string(timeout_s_) + " s");
      if (now - start > std::chrono::seconds(1)) std::this_thread::sleep_for(std::chrono::microseconds(100));
      else std::this_thread::yield();
    }
  }

 private:
  void complete() {
    done_ = true;
    // Work loom queues from now on runs after the collective.
    LOOM_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(comm_->device), done_event_, 0), "rank ", comm_->rank);
    if (after_) after_();
    keep_.clear();
  }

  std::shared_ptr<Comm> comm_;
  std::string name_;
  double timeout_s_;
  cudaEvent_t done_event_;
  std::vector<Tensor> keep_;
  std::function<void()> after_;
  bool done_ = false;
};

class NcclProcessGroup : public ProcessGroup {
 public:
  explicit NcclProcessGroup(std::shared_ptr<Comm> comm) : c_(std::move(comm)) {
    cuda::DeviceGuard guard(c_->device);
    LOOM_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)), "rank ", c_->rank, ": the barrier's buffer");
  }
  ~NcclProcessGroup() override { cudaFree(scratch_); }

  int rank() const override { return c_->rank; }
  int size() const override { return c_->size; }
  std::string backend() const override { return "nccl"; }

  WorkPtr start_all_reduce(const Tensor& t, ReduceOp op) override {
    const std::string name = describe("all_reduce", op, t);
    check_tensor(t, name);
    check_reduction(t.dtype(), op, name);
    return launch(name, {t}, after_avg(t, op), [&] {
      return ncclAllReduce(t.raw_data(), t.raw_data(), count(t), nccl_type(t.dtype()), nccl_op(op), c_->comm,
                           c_->stream);
    });
  }

  WorkPtr start_all_gather(const Tensor& in, const Tensor& out) override {
    const std::string name = describe("all_gather", std::nullopt, in);
    check_tensor(in, name);
    check_tensor(out, name);
    LOOM_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size(), "rank ", rank(), ": collective ",
               name, ": output has ", out.numel(), " ", dtype_name(out.dtype()), " elements, expected ",
               in.numel() * size(), " (", size(), " ranks x ", in.numel(), ")");
    return launch(name, {in, out}, nullptr, [&] {
      return ncclAllGather(in.raw_data(), out.raw_data(), count(in), nccl_type(in.dtype()), c_->comm, c_->stream);
    });
  }

  WorkPtr start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    const std::string name = describe("reduce_scatter", op, in);
    check_tensor(in, name);
    check_tensor(out, name);
    check_reduction(in.dtype(), op, name);
    LOOM_CHECK(out.dtype() == in.dtype() && in.numel() == out.numel() * size(), "rank ", rank(), ": collective ",
               name, ": NCCL needs equal shards: input of ", in.numel(), " elements, output of ", out.numel(),
               " (", dtype_name(out.dtype()), "), ", size(), " ranks (pad the input to a multiple of the ranks)");
    return launch(name, {in, out}, after_avg(out, op), [&] {
      return ncclReduceScatter(in.raw_data(), out.raw_data(), count(out), nccl_type(in.dtype()), nccl_op(op),
                               c_->comm, c_->stream);
    });
  }

  WorkPtr start_broadcast(const Tensor& t, int root) override {
    const std::string name = describe("broadcast", std::nullopt, t) + " from " + std::to_string(root);
    check_tensor(t, name);
    check_peer(root, name);
    return launch(name, {t}, nullptr, [&] {
      return ncclBroadcast(t.raw_data(), t.raw_data(), count(t), nccl_type(t.dtype()), root, c_->comm, c_->stream);
    });
  }

  // NCCL has no barrier: an all-reduce of one float in the group's buffer.
  WorkPtr start_barrier() override {
    const std::string name = "barrier #" + std::to_string(++seq_);
    return launch(name, {}, nullptr,
                  [&] { return ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, c_->comm, c_->stream); });
  }

  WorkPtr start_send(const Tensor& t, int dst, int tag) override {
    const std::string name = describe("send", std::nullopt, t) + " to " + std::to_string(dst) + " tag " +
                             std::to_string(tag) + " (ignored)";
    check_tensor(t, name);
    check_peer(dst, name);
    return launch(name, {t}, nullptr, [&] {
      return ncclSend(t.raw_data(), count(t), nccl_type(t.dtype()), dst, c_->comm, c_->stream);
    });
  }

  WorkPtr start_recv(const Tensor& t, int src, int tag) override {
    const std::string name = describe("recv", std::nullopt, t) + " from " + std::to_string(src) + " tag " +
                             std::to_string(tag) + " (ignored)";
    check_tensor(t, name);
    check_peer(src, name);
    return launch(name, {t}, nullptr, [&] {
      return ncclRecv(t.raw_data(), count(t), nccl_type(t.dtype()), src, c_->comm, c_->stream);
    });
  }

  std::shared_ptr<ProcessGroup> split(int color, int key) override {
    LOOM_CHECK(color >= 0, "rank ", rank(), ": split: color ", color, " must be >= 0");
    barrier();  // timed: every rank is here before the split
    auto child = std::make_shared<Comm>();
    child->device = c_->device;
    child->bootstrap = c_->bootstrap;
    cuda::DeviceGuard guard(c_->device);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t rc = ncclCommSplit(c_->comm, color, key, &child->comm, &config);
    LOOM_CHECK(rc == ncclSuccess || rc == ncclInProgress, "rank ", rank(), ": ncclCommSplit(color ", color,
               ", key ", key, ") failed: ", ncclGetErrorString(rc));
    c_->settle("ncclCommSplit", timeout_s());
    child->rank = rank();  // for messages until the child reports its own
    child->settle("ncclCommSplit (new communicator)", timeout_s());
    LOOM_CHECK(ncclCommUserRank(child->comm, &child->rank) == ncclSuccess &&
                   ncclCommCount(child->comm, &child->size) == ncclSuccess,
               "rank ", rank(), ": ncclCommSplit: cannot read the new communicator's rank and size");
    LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&child->stream, cudaStreamNonBlocking), "rank ", rank());
    auto g = std::make_shared<NcclProcessGroup>(child);
    g->set_timeout_s(timeout_s());
    return g;
  }

  void abort(int code) override {
    if (c_->comm != nullptr) ncclCommAbort(c_->comm);
    c_->comm = nullptr;
    c_->bootstrap->abort(code);
    std::_Exit(code);  // not reached
  }

 private:
  // Orders the collective after loom's queued work, enqueues it on the
  // group's stream and returns a Work that completes with it.
  WorkPtr launch(const std::string& name, std::vector<Tensor> keep, std::function<void()> after,
                 const std::function<ncclResult_t()>& enqueue) {
    LOOM_CHECK(c_->comm != nullptr, "rank ", rank(), ": collective ", name, ": the NCCL communicator was aborted");
    cuda::DeviceGuard guard(c_->device);
    cudaEvent_t ready = nullptr, done = nullptr;
    LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "rank ", rank(), ": ", name);
    LOOM_CUDA_CHECK(cudaEventRecord(ready, cuda::stream(c_->device)), "rank ", rank(), ": ", name);
    LOOM_CUDA_CHECK(cudaStreamWaitEvent(c_->stream, ready, 0), "rank ", rank(), ": ", name);
    cudaEventDestroy(ready);  // released once the wait has been recorded
    const ncclResult_t rc = enqueue();
    if (rc != ncclSuccess && rc != ncclInProgress)
      c_->fail("collective " + name + " failed: " + ncclGetErrorString(rc) + " (" + ncclGetLastError(c_->comm) + ")");
    if (rc == ncclInProgress) c_->settle("collective " + name, timeout_s());
    LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "rank ", rank(), ": ", name);
    LOOM_CUDA_CHECK(cudaEventRecord(done, c_->stream), "rank ", rank(), ": ", name);
    return std::make_shared<NcclWork>(c_, name, timeout_s(), done, std::move(keep), std::move(after));
  }

  std::function<void()> after_avg(const Tensor& t, ReduceOp op) const {
    if (op != ReduceOp::avg || size() == 1) return nullptr;
    const double n = size();  // divide (correctly rounded), not multiply by 1/n
    return [t, n] {
      NoGradGuard guard;
      Tensor(t).copy_(div(t, n));
    };
  }

  std::string describe(const char* what, std::optional<ReduceOp> op, const Tensor& t) {
    std::string s = what;
    if (op) s += std::string("(") + reduce_op_name(*op) + ")";
    s += " #" + std::to_string(++seq_);
    if (t.defined()) s += " of " + std::string(dtype_name(t.dtype())) + shape_str(t.shape());
    return s;
  }
  void check_tensor(const Tensor& t, const std::string& name) const {
    LOOM_CHECK(t.defined(), "rank ", rank(), ": collective ", name, ": undefined tensor");
    LOOM_CHECK(t.device() == cuda_device(c_->device), "rank ", rank(), ": collective ", name,
               ": NcclProcessGroup needs tensors on cuda:", c_->device, ", got one on ", t.device().str());
    LOOM_CHECK(t.is_contiguous(), "rank ", rank(), ": collective ", name, ": the tensor must be contiguous");
  }
  void check_reduction(DType t, ReduceOp op, const std::string& name) const {
    LOOM_CHECK(op != ReduceOp::avg || is_floating(t), "rank ", rank(), ": collective ", name,
               ": avg needs a floating dtype, got ", dtype_name(t));
    LOOM_CHECK(op == ReduceOp::max || t != DType::boolean, "rank ", rank(), ": collective ", name,
               ": only max reduces bool tensors");
  }
  void check_peer(int peer, const std::string& name) const {
    LOOM_CHECK(peer >= 0 && peer < size(), "rank ", rank(), ": collective ", name, ": rank ", peer,
               " is outside the group of ", size());
  }
  static size_t count(const Tensor& t) { return static_cast<size_t>(t.numel()); }

  std::shared_ptr<Comm> c_;
  void* scratch_ = nullptr;
  int64_t seq_ = 0;
};

}  // namespace

bool nccl_built() { return true; }

ProcessGroupPtr make_nccl_process_group(const ProcessGroupPtr& bootstrap, int device) {
  LOOM_CHECK(bootstrap != nullptr, "make_nccl_process_group: no bootstrap group");
  const int rank = bootstrap->rank();
  LOOM_CHECK(device >= 0 && device < cuda_device_count(), "rank ", rank, ": make_nccl_process_group: no device cuda:",
             device, " (", cuda_device_count(), " visible", cuda_available() ? "" : "; " + cuda_unavailable_reason(),
             ")");
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) {
    const ncclResult_t rc = ncclGetUniqueId(&id);
    LOOM_CHECK(rc == ncclSuccess, "rank 0: ncclGetUniqueId failed: ", ncclGetErrorString(rc));
  }
  Tensor bytes = zeros({static_cast<int64_t>(sizeof id)}, DType::u8);  // on the CPU, over the bootstrap group
  std::memcpy(bytes.raw_data(), &id, sizeof id);
  bootstrap->broadcast(bytes, 0);
  std::memcpy(&id, bytes.raw_data(), sizeof id);

  auto comm = std::make_shared<Comm>();
  comm->rank = rank;
  comm->size = bootstrap->size();
  comm->device = device;
  comm->bootstrap = bootstrap;
  init_comm(*comm, id, bootstrap->timeout_s());
  auto g = std::make_shared<NcclProcessGroup>(comm);
  g->set_timeout_s(bootstrap->timeout_s());
  return g;
}

}  // namespace loom::dist

#else  // built without NCCL

namespace loom::dist {

bool nccl_built() { return false; }

ProcessGroupPtr make_nccl_process_group(const ProcessGroupPtr& bootstrap, int device) {
  LOOM_FAIL("rank ", bootstrap ? bootstrap->rank() : 0, ": make_nccl_process_group(cuda:", device,
            "): this build of loom has no NCCL process group (it needs the CUDA backend and NCCL at configure time)");
}

}  // namespace loom::dist

#endif
