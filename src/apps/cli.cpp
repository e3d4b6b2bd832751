#include "cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>

#include "loom/core/cuda.hpp"
#include "loom/core/error.hpp"

namespace loom::cli {

namespace {

// LOOM_HOST_EMULATION=N: the number of stand-in devices; nullopt when unset.
std::optional<int> emulated_devices_from_env() {
  const char* v = std::getenv("LOOM_HOST_EMULATION");
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  LOOM_CHECK(*end == '\0' && n >= 1 && n <= 64, "LOOM_HOST_EMULATION must be a device count from 1 to 64, got '", v,
             "'");
  return static_cast<int>(n);
}

}  // namespace

int run_main(const char* program, const std::function<int()>& body) {
  try {
    std::optional<cuda::HostEmulation> emulation;
    if (const std::optional<int> n = emulated_devices_from_env()) {
      emulation.emplace(*n);
      std::fprintf(stderr, "%s: LOOM_HOST_EMULATION=%d: cuda:0..%d are host-memory stand-ins, not GPUs\n", program,
                   *n, *n - 1);
    }
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.message.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n%s: error: %s\n", program, e.what());
    return 1;
  }
}

std::string take_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw UsageError{std::string("option ") + argv[i] + " needs a value"};
  return argv[++i];
}

}  // namespace loom::cli
