// The host-staged device group (loom/dist/device_group.hpp): device tensors
// copied to host memory, reduced by the host group, copied back when the
// collective completes.
#include <cstdlib>
#include <utility>

#include "loom/core/cuda.hpp"
#include "loom/dist/device_group.hpp"
#include "loom/dist/nccl_process_group.hpp"
#include "loom/ops/creation.hpp"

namespace loom::dist {

namespace {

// The host collective; on completion, each staged result is copied to its
// device tensor (once).
class StagedWork : public Work {
 public:
  StagedWork(WorkPtr inner, std::vector<std::pair<Tensor, Tensor>> results, std::vector<Tensor> keep_alive = {})
      : inner_(std::move(inner)), results_(std::move(results)), keep_alive_(std::move(keep_alive)) {}

  void wait() override {
    inner_->wait();
    deliver();
  }
  bool is_completed() override {
    if (!inner_->is_completed()) return false;
    deliver();
    return true;
  }

 private:
  void deliver() {
    for (auto& [device_tensor, host_tensor] : results_) device_tensor.copy_(host_tensor);
    results_.clear();
    keep_alive_.clear();
  }

  WorkPtr inner_;
  std::vector<std::pair<Tensor, Tensor>> results_;  // (destination on the device, staged result on the host)
  std::vector<Tensor> keep_alive_;                   // host buffers the collective reads
};

class HostStagedProcessGroup : public ProcessGroup {
 public:
  HostStagedProcessGroup(ProcessGroupPtr host, Device device) : host_(std::move(host)), device_(device) {
    set_timeout_s(host_->timeout_s());
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string backend() const override { return host_->backend() + " (host-staged " + device_.str() + ")"; }

  WorkPtr start_all_reduce(const Tensor& t, ReduceOp op) override {
    Tensor h = staged(t, "all_reduce");
    return std::make_shared<StagedWork>(host_->all_reduce_async(h, op), pairs(t, h));
  }
  WorkPtr start_all_gather(const Tensor& in, const Tensor& out) override {
    Tensor hi = staged(in, "all_gather"), ho = host_like(out, "all_gather");
    return std::make_shared<StagedWork>(host_->all_gather_async(hi, ho), pairs(out, ho), std::vector<Tensor>{hi});
  }
  WorkPtr start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    Tensor hi = staged(in, "reduce_scatter"), ho = host_like(out, "reduce_scatter");
    return std::make_shared<StagedWork>(host_->reduce_scatter_async(hi, ho, op), pairs(out, ho),
                                        std::vector<Tensor>{hi});
  }
  WorkPtr start_broadcast(const Tensor& t, int root) override {
    Tensor h = staged(t, "broadcast");
    return std::make_shared<StagedWork>(host_->broadcast_async(h, root), pairs(t, h));
  }
  WorkPtr start_barrier() override { return host_->barrier_async(); }
  WorkPtr start_send(const Tensor& t, int dst, int tag) override {
    Tensor h = staged(t, "send");
    return std::make_shared<StagedWork>(host_->send_async(h, dst, tag), pairs(), std::vector<Tensor>{h});
  }
  WorkPtr start_recv(const Tensor& t, int src, int tag) override {
    Tensor h = host_like(t, "recv");
    return std::make_shared<StagedWork>(host_->recv_async(h, src, tag), pairs(t, h));
  }
  std::shared_ptr<ProcessGroup> split(int color, int key) override {
    return std::make_shared<HostStagedProcessGroup>(host_->split(color, key), device_);
  }
  [[noreturn]] void abort(int code) override {
    host_->abort(code);
    std::abort();  // not reached: the host group's abort ends the job (the compiler cannot see through the call)
  }

 private:
  void check(const Tensor& t, const char* collective) const {
    LOOM_CHECK(t.defined() && t.device() == device_, "rank ", rank(), ": collective ", collective, ": a tensor on ",
               t.defined() ? t.device().str() : std::string("(undefined)"), " passed to the process group of ",
               device_.str(), " (a device group carries tensors on its device only, as NCCL does)");
    LOOM_CHECK(t.is_contiguous(), "rank ", rank(), ": collective ", collective, ": tensors must be contiguous");
  }
  Tensor staged(const Tensor& t, const char* collective) const {
    check(t, collective);
    return t.to(kCPU);
  }
  Tensor host_like(const Tensor& t, const char* collective) const {
    check(t, collective);
    return empty(t.shape(), TensorOptions(t.dtype()));
  }
  static std::vector<std::pair<Tensor, Tensor>> pairs() { return {}; }
  static std::vector<std::pair<Tensor, Tensor>> pairs(const Tensor& device_tensor, const Tensor& host_tensor) {
    return {{device_tensor, host_tensor}};
  }

  ProcessGroupPtr host_;
  Device device_;
};

}  // namespace

ProcessGroupPtr make_host_staged_process_group(ProcessGroupPtr host, Device device) {
  LOOM_CHECK(host != nullptr, "make_host_staged_process_group: no host group");
  LOOM_CHECK(device.is_cuda(), "rank ", host->rank(), ": make_host_staged_process_group: ", device.str(),
             " is not a CUDA device (host tensors use the host group itself)");
  return std::make_shared<HostStagedProcessGroup>(std::move(host), device);
}

DeviceTransport parse_device_transport(const std::string& name, const std::string& where) {
  if (name == "auto") return DeviceTransport::automatic;
  if (name == "nccl") return DeviceTransport::nccl;
  if (name == "staged") return DeviceTransport::staged;
  LOOM_FAIL(where, " is '", name, "', expected auto, nccl or staged");
}

const char* device_transport_name(DeviceTransport t) {
  switch (t) {
    case DeviceTransport::automatic: return "auto";
    case DeviceTransport::nccl: return "nccl";
    case DeviceTransport::staged: return "staged";
  }
  return "?";
}

void check_device_transport(DeviceTransport t, Device device, int rank) {
  if (t == DeviceTransport::automatic) return;
  LOOM_CHECK(device.is_cuda(), "rank ", rank, ": the ", device_transport_name(t), " transport carries CUDA tensors; ",
             "this rank trains on ", device.str());
  if (t != DeviceTransport::nccl) return;
  LOOM_CHECK(nccl_built(), "rank ", rank, ": the nccl transport was asked for, but this build of loom has no NCCL ",
             "(configure found none; see docs/distributed.md)");
  LOOM_CHECK(cuda::host_emulated_devices() == 0, "rank ", rank, ": the nccl transport was asked for, but ",
             device.str(), " is a host emulation (NCCL needs a real GPU)");
}

ProcessGroupPtr make_device_process_group(const ProcessGroupPtr& host, Device device, DeviceTransport transport) {
  LOOM_CHECK(device.is_cuda(), "rank ", host->rank(), ": make_device_process_group: ", device.str(),
             " is not a CUDA device");
  check_device_transport(transport, device, host->rank());
  const bool nccl = transport == DeviceTransport::nccl ||
                    (transport == DeviceTransport::automatic && nccl_built() && cuda::host_emulated_devices() == 0);
  if (nccl) return make_nccl_process_group(host, device.index);
  return make_host_staged_process_group(host, device);
}

}  // namespace loom::dist
