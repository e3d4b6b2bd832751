#!/usr/bin/env bash
# Mutation check of the SIMT emulator's schedules: removes one barrier
# (sync_block() or sync_warp()) at a time from the hand-written tile kernels
# (cuda/*.cuh), rebuilds the emulated kernel tests, and runs them under each
# schedule of cuda/simt_schedule.hpp. A barrier whose removal no schedule
# notices is either redundant or a gap in the tests.
#
#   scripts/barrier-mutations.sh [BUILD_DIR] [SCHEDULE...]
#
# BUILD_DIR: a configured build with tests (default build); SCHEDULE: among
# concurrent, serial_ascending, serial_descending (default all three);
# LOOM_MUTATE_FILES: the kernel headers to mutate (default cuda/*.cuh). Each
# mutation costs a rebuild of the kernel tests and a run per schedule (about a
# minute on 2 cores; 29 barriers). Prints one line per barrier and a count per
# schedule. The source file is restored after each mutation, and on any exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
shift || true
schedules=("$@")
[[ ${#schedules[@]} -gt 0 ]] || schedules=(concurrent serial_ascending serial_descending)
tests="$build/bin/loom_simt_kernel_tests"
if [[ ! -d "$build" ]]; then
  echo "barrier-mutations: no build directory '$build' (configure one with tests first)" >&2
  exit 2
fi

work=$(mktemp -d)
mutated=""
restore() {
  if [[ -n "$mutated" ]]; then cp "$work/original" "$mutated"; mutated=""; fi
}
cleanup() {
  restore
  cmake --build "$build" -j"${LOOM_JOBS:-2}" --target loom_simt_kernel_tests >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A noticed
for s in "${schedules[@]}"; do noticed[$s]=0; done
total=0
# shellcheck disable=SC2086  # the file list is a glob on purpose
sites=$(grep -H -n "sync_block();\|sync_warp();" ${LOOM_MUTATE_FILES:-cuda/*.cuh} | grep -v "^cuda/simt.cuh:" || true)
while IFS=: read -r file line _; do
  [[ -n "$file" ]] || continue
  cp "$file" "$work/original"
  mutated=$file
  sed -i "${line}s/sync_block();/\/* removed *\/;/; ${line}s/sync_warp();/\/* removed *\/;/" "$file"
  if ! cmake --build "$build" -j"${LOOM_JOBS:-2}" --target loom_simt_kernel_tests >"$work/build.log" 2>&1; then
    echo "$file:$line  build failed (see below)"; tail -20 "$work/build.log"; exit 1
  fi
  total=$((total + 1))
  row="$file:$line"
  for s in "${schedules[@]}"; do
    if LOOM_SIMT_SCHEDULE=$s timeout 600 "$tests" >"$work/run.log" 2>&1; then
      row+="  $s: missed"
    else
      row+="  $s: noticed"
      noticed[$s]=$((noticed[$s] + 1))
    fi
  done
  echo "$row"
  restore
done <<<"$sites"

echo "barriers removed: $total"
for s in "${schedules[@]}"; do echo "  $s noticed ${noticed[$s]}"; done
