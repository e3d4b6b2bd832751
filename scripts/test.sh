#!/usr/bin/env bash
# Full local/CI check of loom: deps, Release build + all tests, install +
# find_package consumer, then an ASan/UBSan build running the unit tests.
#
# Environment:
#   LOOM_SKIP_DEPS=1       do not run scripts/install-deps.sh
#   LOOM_SKIP_SANITIZE=1   skip the ASan/UBSan pass
#   LOOM_SKIP_FUZZ=1       skip the libFuzzer pass (scripts/fuzz.sh)
#   LOOM_CTEST_ARGS="..."  extra arguments for the main ctest run (e.g. "-L unit")
#   LOOM_JOBS=N            parallel jobs (default 2)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
JOBS=${LOOM_JOBS:-2}

# Allow MPI-based tests to run as root inside containers / CI.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------
# Phase bookkeeping: each phase prints "==> name" and its elapsed time; the
# EXIT trap prints a summary and names the phase that failed, if any.
# ---------------------------------------------------------------------------
SUMMARY=()
PHASE=""
PHASE_START=0
SCRIPT_START=$(date +%s)

phase() {
  PHASE=$1
  PHASE_START=$(date +%s)
  echo
  echo "==> ${PHASE}"
}

phase_done() {
  local dt=$(( $(date +%s) - PHASE_START ))
  echo "<== ${PHASE}: ok (${dt}s)"
  SUMMARY+=("$(printf '  %-5s %5ss  %s' ok "$dt" "$PHASE")")
  PHASE=""
}

phase_skip() {
  echo
  echo "==> $1: skipped ($2)"
  SUMMARY+=("$(printf '  %-5s %5s   %s' skip - "$1 ($2)")")
}

on_exit() {
  local rc=$?
  set +e
  if [[ -n "$PHASE" ]]; then
    local dt=$(( $(date +%s) - PHASE_START ))
    SUMMARY+=("$(printf '  %-5s %5ss  %s' FAIL "$dt" "$PHASE")")
  fi
  local total=$(( $(date +%s) - SCRIPT_START ))
  echo
  echo "==> summary (${total}s total)"
  printf '%s\n' "${SUMMARY[@]}"
  if [[ $rc -ne 0 ]]; then
    if [[ -n "$PHASE" ]]; then
      echo "test.sh: FAILED in phase \"${PHASE}\" (exit code ${rc})"
    else
      echo "test.sh: FAILED (exit code ${rc})"
    fi
  else
    echo "test.sh: all phases passed"
  fi
  exit "$rc"
}
trap on_exit EXIT

# ---------------------------------------------------------------------------
if [[ "${LOOM_SKIP_DEPS:-0}" == "1" ]]; then
  phase_skip "dependencies" "LOOM_SKIP_DEPS=1"
else
  phase "dependencies"
  scripts/install-deps.sh </dev/null
  phase_done
fi

phase "configure (Release)"
cmake -S . -B build \
  -DCMAKE_BUILD_TYPE=Release \
  -DLOOM_CUDA=AUTO \
  -DLOOM_BUILD_TESTS=ON \
  -DLOOM_BUILD_EXAMPLES=ON \
  -DLOOM_BUILD_BENCHMARKS=ON
phase_done

phase "build (Release)"
cmake --build build -j"$JOBS"
phase_done

phase "ctest (Release)"
# shellcheck disable=SC2086  # LOOM_CTEST_ARGS is intentionally word-split
ctest --test-dir build --output-on-failure --no-tests=error -j"$JOBS" -LE fuzz ${LOOM_CTEST_ARGS:-} </dev/null
phase_done

phase "install + find_package consumer"
rm -rf build/_install build/_consumer
cmake --install build --prefix build/_install
cmake -S tests/consumer -B build/_consumer \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$ROOT/build/_install"
cmake --build build/_consumer -j"$JOBS"
build/_consumer/loom_consumer </dev/null
phase_done

if [[ "${LOOM_SKIP_FUZZ:-0}" == "1" ]]; then
  phase_skip "fuzz" "LOOM_SKIP_FUZZ=1"
else
  phase "fuzz: ctest -L fuzz (libFuzzer + ASan/UBSan, 30 s per parser)"
  ctest --test-dir build --output-on-failure --no-tests=error -L fuzz </dev/null
  phase_done
fi

if [[ "${LOOM_SKIP_SANITIZE:-0}" == "1" ]]; then
  phase_skip "sanitizers (ASan+UBSan)" "LOOM_SKIP_SANITIZE=1"
else
  phase "sanitizers: configure + build (Debug, ASan+UBSan)"
  cmake -S . -B build-asan \
    -DCMAKE_BUILD_TYPE=Debug \
    -DLOOM_SANITIZE=ON \
    -DLOOM_CUDA=OFF \
    -DLOOM_BUILD_TESTS=ON \
    -DLOOM_BUILD_EXAMPLES=OFF \
    -DLOOM_BUILD_BENCHMARKS=OFF
  cmake --build build-asan -j"$JOBS"
  phase_done

  # The emulated training steps under the SIMT emulator's serial schedules
  # run in the Release pass above; under the sanitizers they would add three
  # minutes to what simt.schedule.* (the kernels under both schedules) covers.
  phase "sanitizers: ctest -L 'unit|gradcheck|golden'"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L 'unit|gradcheck|golden' -E '^device[.]tiles[.].*[.]serial_' \
      --output-on-failure --no-tests=error -j"$JOBS" </dev/null
  phase_done
fi
