// Small helpers shared by the command-line programs.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace loom::cli {

// Runs `body`, turning a loom::Error (or any std::exception) into
// "PROGRAM: error: MESSAGE" on stderr and exit status 1 (2 for usage errors).
// With LOOM_HOST_EMULATION=N in the environment, `body` runs under a
// cuda::HostEmulation of N devices (host-memory stand-ins for cuda:0..N-1):
// a device recipe, on one rank or under mpirun, checked without a GPU.
int run_main(const char* program, const std::function<int()>& body);

// Thrown for a bad command line; run_main prints the usage text with it.
struct UsageError {
  std::string message;
};

// The value after flag argv[i] (advancing i); UsageError when missing.
std::string take_value(int argc, char** argv, int& i);

}  // namespace loom::cli
