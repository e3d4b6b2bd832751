// A rank that stalls or exits early must not hang the others: they abort the
// job when their collective passes its deadline (LOOM_DIST_TIMEOUT_S).
// Usage: loom_dist_stall_test stall|exit|kill. Rank 1 sleeps for 10 minutes
// (stall), returns at once (exit) or is killed by SIGKILL (kill); the other
// ranks all-reduce. Run by expect_abort.sh, which checks that the job fails,
// in time, with the deadline message (or, for a killed rank, mpirun's report
// of the signal, whichever comes first).
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <loom/dist/dist.hpp>
#include <loom/loom.hpp>

int main(int argc, char** argv) {
  using namespace loom;
  auto world = dist::init_distributed();
  const bool stall = argc > 1 && std::strcmp(argv[1], "stall") == 0;
  const bool kill = argc > 1 && std::strcmp(argv[1], "kill") == 0;
  if (world->rank() == 1) {
    if (stall) std::this_thread::sleep_for(std::chrono::minutes(10));
    if (kill) std::raise(SIGKILL);
    return 0;
  }
  Tensor t = ones({16});
  world->all_reduce(t);
  std::printf("rank %d: the all_reduce completed, which it must not\n", world->rank());
  return 0;
}
