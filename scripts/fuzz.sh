#!/usr/bin/env bash
# Fuzzes loom's file parsers (safetensors headers, checkpoint manifests) with
# libFuzzer + ASan + UBSan: configures a clang build in build-fuzz/ (the main
# build uses g++, which has no libFuzzer), builds the library and the fuzz
# targets only, and runs each target for SECONDS over a fresh copy of its
# committed seed corpus (tests/fuzz/corpus/TARGET/).
#
# usage: scripts/fuzz.sh [SECONDS]      (default 30 per target)
# exit:  0 no finding; 1 a finding (the input is saved under
#        build-fuzz/artifacts/TARGET/, reproduce with
#        build-fuzz/bin/loom_fuzz_TARGET FILE); 77 no clang/libFuzzer here.
# env:   LOOM_JOBS=N build jobs (default 2); LOOM_FUZZ_CXX (default clang++)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-30}
jobs=${LOOM_JOBS:-2}
cxx=${LOOM_FUZZ_CXX:-clang++}
targets=(safetensors manifest)
build=build-fuzz

[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number (got '$seconds')" >&2; exit 2; }

# libFuzzer present? (Debian: clang + libclang-rt-dev)
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz.sh: SKIPPED: $cxx not found (apt-get install clang libclang-rt-dev)"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz.sh: SKIPPED: $cxx cannot link libFuzzer (apt-get install libclang-rt-dev):"
  cat "$probe/err"
  exit 77
fi

echo "==> fuzz: configure + build ($build, $cxx)"
mkdir -p "$build"
CXX=$cxx cmake -S . -B "$build" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOOM_FUZZ=ON \
  -DLOOM_CUDA=OFF \
  -DLOOM_MPI=OFF \
  -DLOOM_BUILD_TESTS=OFF \
  -DLOOM_BUILD_EXAMPLES=OFF \
  -DLOOM_BUILD_BENCHMARKS=OFF >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/loom_fuzz_}"

status=0
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  seeds=$(ls "$corpus" | wc -l)
  echo "==> fuzz: loom_fuzz_$t for ${seconds}s ($seeds seeds)"
  log=$build/fuzz-$t.log
  rc=0
  # -error_exitcode: libFuzzer's default (77) would read as "skipped".
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/bin/loom_fuzz_$t" "$corpus" \
      -dict="tests/fuzz/$t.dict" \
      -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
      -error_exitcode=1 -timeout_exitcode=1 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  echo "    $t: ${execs:-?} execs, ${speed:-?} exec/s, corpus $seeds -> $(ls "$corpus" | wc -l) inputs"
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "fuzz.sh: FINDING in loom_fuzz_$t (exit $rc); last lines of $log:"
    tail -n 40 "$log"
    echo "inputs: $(ls "$artifacts")"
  fi
done
if [[ $status -eq 0 ]]; then echo "fuzz.sh: no findings"; fi
exit "$status"
