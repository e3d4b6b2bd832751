// DataParallel: bucketed, overlapped gradient averaging (see the header).
#include "loom/dist/data_parallel.hpp"

#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/creation.hpp"

namespace loom::dist {

struct DataParallel::State {
  struct Bucket {
    std::vector<size_t> params;  // indices into State::params
    Tensor flat;
    WorkPtr work;
    size_t ready = 0;
  };
  ProcessGroup* group = nullptr;
  DataParallelOptions options;
  std::vector<std::string> names;
  std::vector<Tensor> params;
  std::vector<size_t> bucket_of;   // parameter index -> bucket
  std::vector<int64_t> offset_of;  // parameter index -> offset in its bucket's flat buffer
  std::vector<bool> ready;         // this step: the hook fired
  std::vector<Bucket> buckets;
  size_t next_launch = 0;  // buckets launch strictly in order
  bool sync = true;        // false inside no_sync()

  void pack(Bucket& b) {
    NoGradGuard guard;
    for (size_t i : b.params) {
      const Tensor& p = params[i];
      Tensor dst = b.flat.narrow(0, offset_of[i], p.numel());
      const Tensor g = p.grad();
      if (g.defined()) {
        dst.copy_(g.reshape({p.numel()}));
      } else {
        LOOM_CHECK(options.allow_missing_grads, "rank ", group->rank(), ": DataParallel: parameter '", names[i],
                   "' received no gradient in this step (every rank must produce a gradient for every parameter; "
                   "set allow_missing_grads to all-reduce zeros instead)");
        dst.zero_();
      }
    }
  }
  void launch(size_t k) {
    Bucket& b = buckets[k];
    pack(b);
    b.work = group->all_reduce_async(b.flat, ReduceOp::avg);
  }
  // Launches, in order, every bucket whose parameters are all ready.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].ready == buckets[next_launch].params.size())
      launch(next_launch++);
  }
  void on_ready(size_t i) {
    if (!sync || !options.overlap || ready[i]) return;
    ready[i] = true;
    ++buckets[bucket_of[i]].ready;
    launch_ready();
  }
};

DataParallel::DataParallel(nn::Module& model, ProcessGroupPtr group, DataParallelOptions options)
    : model_(model), group_(std::move(group)), state_(std::make_shared<State>()) {
  LOOM_CHECK(group_ != nullptr, "DataParallel: no process group");
  LOOM_CHECK(options.bucket_cap_bytes > 0, "DataParallel: bucket_cap_bytes must be positive, got ", options.bucket_cap_bytes);
  State& s = *state_;
  s.group = group_.get();
  s.options = options;

  if (options.broadcast_from_rank0 && group_->size() > 1) {
    NoGradGuard guard;
    for (auto& [name, t] : model_.state_dict()) {
      LOOM_CHECK(t.is_contiguous(), "rank ", group_->rank(), ": DataParallel: '", name, "' is not contiguous");
      group_->broadcast(t, 0);
    }
  }

  // Buckets in reverse creation order: the last layers' gradients are ready first.
  auto named = model_.named_parameters();
  for (auto it = named.rbegin(); it != named.rend(); ++it) {
    if (!it->second.requires_grad()) continue;
    s.names.push_back(it->first);
    s.params.push_back(it->second);
  }
  const size_t n = s.params.size();
  s.bucket_of.resize(n);
  s.offset_of.resize(n);
  s.ready.assign(n, false);
  int64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = s.params[i];
    const int64_t pb = p.numel() * static_cast<int64_t>(itemsize(p.dtype()));
    const bool fresh = s.buckets.empty() || bytes + pb > options.bucket_cap_bytes ||
                       s.params[s.buckets.back().params.front()].dtype() != p.dtype();
    if (fresh) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = s.buckets.back();
    s.bucket_of[i] = s.buckets.size() - 1;
    s.offset_of[i] = bytes / static_cast<int64_t>(itemsize(p.dtype()));
    b.params.push_back(i);
    bytes += pb;
  }
  for (auto& b : s.buckets) {
    int64_t numel = 0;
    for (size_t i : b.params) numel += s.params[i].numel();
    const Tensor& first = s.params[b.params.front()];
    b.flat = zeros({numel}, TensorOptions(first.dtype()).with_device(first.device()));
  }

  std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < n; ++i) {
    s.params[i].register_grad_ready_hook([weak, i](Tensor&) {
      if (auto st = weak.lock()) st->on_ready(i);
    });
  }
}

DataParallel::~DataParallel() {
  // Outstanding buckets must complete before their buffers go away.
  for (auto& b : state_->buckets)
    if (b.work) b.work->wait();
}

void DataParallel::finish() {
  State& s = *state_;
  // Anything not launched from the hooks (overlap off, or parameters whose
  // hook did not fire) goes now, in bucket order.
  while (s.next_launch < s.buckets.size()) s.launch(s.next_launch++);
  NoGradGuard guard;
  for (auto& b : s.buckets) {
    b.work->wait();
    b.work.reset();
    for (size_t i : b.params) {
      Tensor& p = s.params[i];
      Tensor avg = b.flat.narrow(0, s.offset_of[i], p.numel()).view(p.shape());
      if (p.grad().defined())
        p.grad().copy_(avg);
      else
        p.set_grad(avg.clone());
    }
    b.ready = 0;
  }
  s.ready.assign(s.ready.size(), false);
  s.next_launch = 0;
}

DataParallel::NoSync::NoSync(DataParallel& dp) : dp_(dp), previous_(dp.state_->sync) { dp_.state_->sync = false; }
DataParallel::NoSync::~NoSync() { dp_.state_->sync = previous_; }

size_t DataParallel::buckets_launched() const { return state_->next_launch; }

std::vector<std::vector<std::string>> DataParallel::bucket_names() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& b : state_->buckets) {
    out.emplace_back();
    for (size_t i : b.params) out.back().push_back(state_->names[i]);
  }
  return out;
}

}  // namespace loom::dist
