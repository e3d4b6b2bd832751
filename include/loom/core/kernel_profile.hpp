// Where a step's time goes, kernel by kernel.
//
// While a profile runs, every call through the kernel table is timed, on
// every device and thread: the table's entry with its operation for the
// elementwise and reduction entries ("binary.mul", "reduce.sum", "gemm"),
// and the part of the work that made it (the graph node whose backward ran
// it, the engine's sum of the gradients of a tensor used more than once, or
// the data loader, whose workers run beside the step: their time overlaps
// it). Adding into a leaf's .grad is the backward of its AccumulateGrad node. A kernel that calls the table itself is
// counted once, in the outermost entry. On a CUDA device each timed call
// waits for the device before and after, so the figures are the kernels'
// own time at the cost of the overlap a real step has: read the profile for
// its breakdown and the benchmark's median for the step's speed.
//
//   loom::start_kernel_profile();
//   ... a few training steps ...
//   std::cerr << loom::format_kernel_profile(loom::stop_kernel_profile(), wall_seconds);
//
// `loom-bench train-step --profile N` does this for N steps of any recipe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct KernelTime {
  std::string kernel;   // "gemm", "binary.mul", "unary_backward.gelu", ...
  std::string context;  // "backward of NODE", "gradient sum", "data loading" (the loader's work;
                        // with workers, beside the step), or "" (forward, optimizer, anything else)
  std::string device;   // "cpu", "cuda:0", ...
  int64_t calls = 0;
  double seconds = 0;  // summed over calls (and threads)
};

// Starts timing kernel calls, with empty figures; loom::Error if a profile is already running.
void start_kernel_profile();
// Stops timing and returns the figures, longest total first; loom::Error if none is running.
std::vector<KernelTime> stop_kernel_profile();
bool kernel_profile_running();

// A table of the `max_rows` longest rows (share of the kernels' total and of
// `wall_seconds`, calls, mean time per call) and a line for the rest.
std::string format_kernel_profile(const std::vector<KernelTime>& rows, double wall_seconds, size_t max_rows = 25);

namespace detail {
// Names the part of the work this thread's kernel calls belong to, as
// `prefix` + `name` (the autograd engine sets "backward of " + the node's
// name around each node); both must outlive the scope. Two thread-local
// stores, whether or not a profile runs.
class KernelContextScope {
 public:
  KernelContextScope(const char* prefix, const std::string& name);
  ~KernelContextScope();
  KernelContextScope(const KernelContextScope&) = delete;
  KernelContextScope& operator=(const KernelContextScope&) = delete;

 private:
  const char* previous_prefix_;
  const std::string* previous_name_;
};
}  // namespace detail

}  // namespace loom
