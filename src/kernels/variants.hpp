// Kernel variants: another version of a kernel, on main and built in every
// CUDA build, but off until a device has checked and timed it. The
// environment variable LOOM_KERNEL_VARIANTS (names joined by commas) turns
// them on for one process; scripts/gpu-check.sh runs the suites they name
// once with all of them on, then each one's bench sections without and with
// it, in turns.
// A variant that wins becomes the kernel; one that loses is deleted.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace loom::kernels {

struct KernelVariant {
  const char* name;      // [a-z0-9_]: a file name and an environment value
  const char* checks;    // the loom_cuda_tests suites that must pass with it on, space-separated
  const char* sections;  // the loom_cuda_tests bench sections that time it, space-separated
  const char* summary;   // what it changes, one line
};

// Every variant of this build.
const std::vector<KernelVariant>& kernel_variants();

// The names in a LOOM_KERNEL_VARIANTS value ("" for none); an unknown name
// is an error naming it and the known ones.
std::set<std::string> parse_kernel_variants(std::string_view list);

// Whether LOOM_KERNEL_VARIANTS turns this variant on (read once a process).
// `name` must be one of kernel_variants().
bool variant_on(std::string_view name);

}  // namespace loom::kernels
