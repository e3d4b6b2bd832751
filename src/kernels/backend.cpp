#include "kernels/backend.hpp"

#include <array>
#include <atomic>

#include "loom/core/cuda.hpp"

namespace loom::kernels {

namespace {
std::array<std::atomic<const Backend*>, 2>& tables() {
  static std::array<std::atomic<const Backend*>, 2> t{};
  return t;
}
}  // namespace

const Backend* cpu_backend();  // defined in src/cpu/backend_cpu.cpp

#if LOOM_WITH_CUDA
// cuda/backend_cuda.cpp: the CUDA table, registered on first use; nullptr when
// no device is present.
const Backend* cuda_backend();

namespace {

// With CUDA tensors about, a device pointer must never reach a CPU kernel:
// the CPU table is wrapped so that every entry first checks that its tensors
// are on the CPU. copy is the exception: a CPU destination with a CUDA source
// (t_cpu.copy_(t_cuda)) goes to the CUDA table, which moves data both ways.
template <class T>
void check_cpu_arg(const char*, const T&) {}
void check_cpu_arg(const char* entry, const Tensor& t) {
  LOOM_CHECK(!t.defined() || t.device().is_cpu(), entry, ": a tensor on ", t.device().str(),
             " reached the CPU kernel (operands must be on one device; move them with loom::to_device)");
}

void guarded_copy(const Tensor& src, const Tensor& dst) {
  if (src.device() != dst.device()) {
    const Backend* cuda = cuda_backend();
    LOOM_CHECK(cuda != nullptr, "copy from ", src.device().str(), " to ", dst.device().str(), ": ",
               cuda_unavailable_reason());
    cuda->copy(src, dst);
    return;
  }
  cpu_backend()->copy(src, dst);
}

const Backend* guarded_cpu_backend() {
  static const Backend table = [] {
    Backend g{};
#define LOOM_GUARD_ENTRY(entry)                     \
  g.entry = [](auto... a) {                         \
    (check_cpu_arg(#entry, a), ...);                \
    cpu_backend()->entry(a...);                     \
  }
    LOOM_GUARD_ENTRY(fill);
    LOOM_GUARD_ENTRY(unary);
    LOOM_GUARD_ENTRY(unary_backward);
    LOOM_GUARD_ENTRY(binary);
    LOOM_GUARD_ENTRY(compare);
    LOOM_GUARD_ENTRY(where);
    LOOM_GUARD_ENTRY(reduce);
    LOOM_GUARD_ENTRY(gemm);
    LOOM_GUARD_ENTRY(softmax);
    LOOM_GUARD_ENTRY(softmax_backward);
    LOOM_GUARD_ENTRY(norm);
    LOOM_GUARD_ENTRY(norm_backward);
    LOOM_GUARD_ENTRY(cross_entropy);
    LOOM_GUARD_ENTRY(cross_entropy_backward);
    LOOM_GUARD_ENTRY(index_select);
    LOOM_GUARD_ENTRY(index_add);
    LOOM_GUARD_ENTRY(gather);
    LOOM_GUARD_ENTRY(scatter);
    LOOM_GUARD_ENTRY(uniform);
    LOOM_GUARD_ENTRY(normal);
    LOOM_GUARD_ENTRY(unfold2d);
    LOOM_GUARD_ENTRY(fold2d);
    LOOM_GUARD_ENTRY(adamw);
#undef LOOM_GUARD_ENTRY
    g.copy = guarded_copy;
    return g;
  }();
  return &table;
}

}  // namespace
#endif  // LOOM_WITH_CUDA

void register_backend(DeviceType type, const Backend* table) { tables()[static_cast<size_t>(type)].store(table); }

const Backend& backend(Device device) {
#if LOOM_WITH_CUDA
  if (device.is_cpu()) return *guarded_cpu_backend();
#else
  if (device.is_cpu()) return *cpu_backend();
#endif
  const Backend* t = tables()[static_cast<size_t>(device.type)].load();
#if LOOM_WITH_CUDA
  if (t == nullptr && device.is_cuda()) t = cuda_backend();
#endif
  LOOM_CHECK(t != nullptr, "no kernels for device ", device.str(), ": ", cuda_unavailable_reason());
  return *t;
}

}  // namespace loom::kernels
