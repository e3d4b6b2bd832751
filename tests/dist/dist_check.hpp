// A minimal check harness for multi-rank test programs: every rank runs every
// check (so collectives stay matched), failures are printed with the rank,
// and main returns non-zero when any rank failed (mpirun then does too).
#pragma once
#include <cstdio>
#include <functional>
#include <string>

#include <loom/core/error.hpp>
#include <loom/dist/process_group.hpp>

namespace dist_test {
inline int failures = 0;
inline int rank = 0;
}  // namespace dist_test

#define DCHECK(cond, ...)                                                                                   \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      ++dist_test::failures;                                                                                \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s %s\n", dist_test::rank, __FILE__, __LINE__, #cond, \
                   ::loom::detail::concat("" __VA_OPT__(, ) __VA_ARGS__).c_str());                          \
    }                                                                                                       \
  } while (0)

// Runs `fn`, expecting a loom::Error whose message contains every fragment.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<const char*> fragments, const char* what) {
  try {
    fn();
    ++dist_test::failures;
    std::fprintf(stderr, "rank %d: %s: expected a loom::Error, none thrown\n", dist_test::rank, what);
  } catch (const loom::Error& e) {
    const std::string msg = e.what();
    for (const char* f : fragments) {
      if (msg.find(f) == std::string::npos) {
        ++dist_test::failures;
        std::fprintf(stderr, "rank %d: %s: message lacks '%s': %s\n", dist_test::rank, what, f, msg.c_str());
      }
    }
  }
}

namespace dist_test {

// The main of a multi-rank test program: runs `checks` on the world group.
// An unexpected exception aborts the whole job (the other ranks would
// otherwise wait in their next collective); the exit status is non-zero when
// any check failed on this rank.
inline int run_checks(const char* name, const std::function<void(const loom::dist::ProcessGroupPtr&)>& checks) {
  auto world = loom::dist::init_distributed();
  rank = world->rank();
  try {
    checks(world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s: unexpected error: %s\n", rank, name, e.what());
    world->abort(1);
  }
  if (failures == 0 && rank == 0) std::printf("%s: all checks passed on %d ranks\n", name, world->size());
  return failures == 0 ? 0 : 1;
}

}  // namespace dist_test
