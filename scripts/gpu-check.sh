#!/usr/bin/env bash
# gpu-check: build loom with CUDA on a machine with an NVIDIA GPU, run the CUDA
# tests (ctest -L cuda), device timings (copy bandwidth, f32 and bf16 GEMM
# rates, kernels) and GPT-2 124M training steps in fp32 and bf16 (MFU against
# the measured bf16 GEMM rate), and print one summary block.
# Meant for a short-lived GPU machine: builds only what the CUDA tests need and
# keeps to a time budget (default 540 s, all phases together).
#
#   scripts/gpu-check.sh               configure, build, test, time, summarise
#   scripts/gpu-check.sh --stage-deps  run on a machine that has the build
#                                      dependencies installed (Debian packages
#                                      nlohmann-json3-dev, libeigen3-dev, catch2,
#                                      zlib1g-dev; cuDNN's frontend headers):
#                                      copies their headers, CMake
#                                      packages and libz into build-gpu-deps/ for a bare
#                                      GPU machine (about 12 MiB; git ignores it as
#                                      a build* folder, so carry it explicitly)
#
# When build-gpu-deps/ exists the build looks there first (CMAKE_PREFIX_PATH).
# Environment:
#   OUT                      logs and summary.txt go there (else <build>/gpu-check-logs)
#   LOOM_GPU_BUILD_DIR       build directory (default build-gpu)
#   LOOM_JOBS                parallel build jobs (default 16)
#   LOOM_CUDA_ARCH           CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   LOOM_GPU_CHECK_BUDGET    seconds for the whole run (default 540)
# Exit status: 0 when the build and every CUDA test passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if [[ "${1:-}" == "--stage-deps" ]]; then
  set -e
  D=$ROOT/build-gpu-deps
  rm -rf "$D"
  mkdir -p "$D/include" "$D/lib" "$D/share/cmake" "$D/share/eigen3" "$D/lib/cmake"
  cp -r /usr/include/eigen3 /usr/include/nlohmann /usr/include/catch2 "$D/include/"
  cp /usr/include/zlib.h /usr/include/zconf.h "$D/include/" 2>/dev/null ||
    cp /usr/include/zlib.h /usr/include/x86_64-linux-gnu/zconf.h "$D/include/"
  cp -r /usr/share/cmake/nlohmann_json "$D/share/cmake/"
  cp -r /usr/share/eigen3/cmake "$D/share/eigen3/"
  cp -r /usr/lib/cmake/Catch2 "$D/lib/cmake/"
  cp /usr/lib/libCatch2WithMain.a "$D/lib/" 2>/dev/null || true  # named by Catch2's CMake package
  cp -L /usr/lib/x86_64-linux-gnu/libz.so "$D/lib/libz.so"
  cp -L /usr/lib/x86_64-linux-gnu/libz.so.1 "$D/lib/libz.so.1"
  # cuDNN's C++ frontend headers (scripts/install-deps.sh fetches them), for the cuDNN attention
  FRONTEND=$(ls -d /usr/local/share/cudnn-frontend-*/include 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$FRONTEND" ]]; then
    cp -r "$FRONTEND/." "$D/include/"
  else
    echo "no cuDNN frontend headers (scripts/install-deps.sh fetches them): the GPU build leaves out the cuDNN attention"
  fi
  du -sh "$D"
  echo "staged into $D; carry it to the GPU machine with the working tree"
  exit 0
fi

BUILD=${LOOM_GPU_BUILD_DIR:-build-gpu}
JOBS=${LOOM_JOBS:-16}
ARCH=${LOOM_CUDA_ARCH:-90}
BUDGET=${LOOM_GPU_CHECK_BUDGET:-540}
LOGS=${OUT:-$ROOT/$BUILD/gpu-check-logs}
mkdir -p "$LOGS"
rm -f "$LOGS"/{env,configure,build,ctest,bench,train}.log "$LOGS/summary.txt"  # this run's logs only
START=$(date +%s)
SUMMARY=()
STATUS=0

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }
# run_phase NAME LOG MAX_SECONDS CMD...: runs CMD under timeout, logs, records.
run_phase() {
  local name=$1 log=$2 max=$3
  shift 3
  local left
  left=$(remaining)
  local limit=$(( max < left ? max : left ))
  if (( limit < 10 )); then
    # Not a failure by itself: required phases turn a skip into FAIL (|| STATUS=1).
    SUMMARY+=("$(printf '  %-8s %6s  %s' SKIP - "$name (time budget spent)")")
    return 99
  fi
  echo "==> $name (limit ${limit}s, log $log)"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if (( rc == 0 )); then
    SUMMARY+=("$(printf '  %-8s %5ss  %s' ok "$dt" "$name")")
  elif (( rc == 124 || rc == 137 )); then
    SUMMARY+=("$(printf '  %-8s %5ss  %s' TIMEOUT "$dt" "$name")")
  else
    SUMMARY+=("$(printf '  %-8s %5ss  %s' "FAIL($rc)" "$dt" "$name")")
  fi
  tail -n 25 "$log"
  return $rc
}

# --- the machine ------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -a)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 || true
  else
    echo "nvidia-smi: not found"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc: not on PATH"
  ls /usr/local/cuda/bin/nvcc 2>/dev/null || true
  c++ --version 2>&1 | head -n 1 || echo "c++: not found"
  cmake --version | head -n 1
  command -v ninja >/dev/null && echo "ninja $(ninja --version)" || echo "ninja: not found (make)"
  echo "nproc: $(nproc)"
} >"$LOGS/env.log" 2>&1
cat "$LOGS/env.log"

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)

# --- configure + build --------------------------------------------------------
CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$ARCH"
            -DLOOM_MPI=OFF -DLOOM_BUILD_EXAMPLES=OFF)
command -v ninja >/dev/null && [[ ! -f "$BUILD/Makefile" ]] && CMAKE_ARGS+=(-G Ninja)
if [[ -d "$ROOT/build-gpu-deps" ]]; then
  CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$ROOT/build-gpu-deps" "-DZLIB_INCLUDE_DIR=$ROOT/build-gpu-deps/include"
               "-DZLIB_LIBRARY=$ROOT/build-gpu-deps/lib/libz.so")
fi
[[ -z "${CUDACXX:-}" && -x /usr/local/cuda/bin/nvcc ]] && export CUDACXX=/usr/local/cuda/bin/nvcc
# cuDNN and NCCL may come as pip wheels (nvidia-cudnn-*, nvidia-nccl-*) rather
# than with the toolkit: offer their folders to cmake/cuda_library.cmake.
PIP_NVIDIA=$(python3 -c "import nvidia; print(';'.join(p + '/' + d for p in nvidia.__path__ for d in ('cudnn', 'nccl')))" \
               2>/dev/null || true)
[[ -n "$PIP_NVIDIA" ]] && CMAKE_ARGS+=("-DLOOM_CUDA_LIBRARY_HINTS=$PIP_NVIDIA")

# loom-bench times whole training steps on the device (train-step).
CMAKE_ARGS+=("-DLOOM_BUILD_BENCHMARKS=ON")

BUILT=0
if run_phase "configure (CUDA archs $ARCH)" "$LOGS/configure.log" 120 cmake "${CMAKE_ARGS[@]}"; then
  TARGETS=(loom_cuda_tests loom-bench)
  run_phase "build ${TARGETS[*]} (-j$JOBS)" "$LOGS/build.log" 420 \
    cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" && BUILT=1
fi
(( BUILT == 1 )) || STATUS=1

# --- tests ------------------------------------------------------------------------
TEST_LINE="not run"
if (( BUILT == 1 )); then
  run_phase "ctest -L cuda" "$LOGS/ctest.log" 300 \
    ctest --test-dir "$BUILD" -L cuda -V --output-on-failure --timeout 280 || STATUS=1
  TEST_LINE=$(grep -E "tests passed|tests failed" "$LOGS/ctest.log" | tail -n 1)
  [[ -n "$TEST_LINE" ]] || TEST_LINE="(no ctest summary: see ctest.log)"
  SKIPPED=$(grep -cE "^ *[0-9]+/[0-9]+ Test +#[0-9]+: cuda\..*\*\*\*Skipped" "$LOGS/ctest.log")
  if (( SKIPPED > 0 )); then
    STATUS=1  # a skip means no device was found: not a pass
    TEST_LINE="SKIPPED ($SKIPPED cuda tests): $(grep -m1 -o 'skipped: no GPU.*' "$LOGS/ctest.log")"
  fi
fi

# --- timings -----------------------------------------------------------------------
BENCH_LINE="not run"
if (( BUILT == 1 )); then
  if run_phase "CUDA timings (loom_cuda_tests bench)" "$LOGS/bench.log" 180 "$BUILD/bin/loom_cuda_tests" bench; then
    BENCH_LINE="$(grep -c '"median_ms"' "$LOGS/bench.log") timings in bench.log"
  else
    BENCH_LINE="failed: see bench.log"
  fi
  # GPT-2 124M (12 layers, width 768, sequence 1024, batch 8), random tokens;
  # MFU against the bf16 GEMM rate measured above.
  PEAK=$(grep -h '"shape": "8192^3 bf16"' "$LOGS/bench.log" | grep -o '"tflops": [0-9.]*' | awk '{print $2}' | head -n 1)
  for precision in fp32 bf16; do
    run_phase "train-step GPT-2 124M $precision" "$LOGS/train.log" 150 \
      "$BUILD/bin/loom-bench" train-step --recipe "$ROOT/benchmarks/gpt2-124m.json" --synthetic 1 \
      --set train.device=cuda --set "train.precision=$precision" --steps 5 --warmup 2 \
      ${PEAK:+--peak-tflops "$PEAK"} || true
  done
fi

# --- summary -------------------------------------------------------------------------
{
  echo
  echo "==================== loom gpu-check ===================="
  echo "  gpu:     ${GPU_NAME:-none found}"
  echo "  commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "  build:   $BUILD, Release, CUDA archs $ARCH"
  echo "  tests:   $TEST_LINE"
  grep -hE "^([0-9]+: )?cuda\.(runtime|kernels|ops|models): " "$LOGS/ctest.log" 2>/dev/null | sed -E 's/^([0-9]+: )?/    /'
  grep -hE "^([0-9]+: )?  failed: " "$LOGS/ctest.log" 2>/dev/null | head -n 30 | cut -c1-300 | sed -E 's/^([0-9]+: )?/    /'
  echo "  timings: $BENCH_LINE"
  grep -hE '"median_ms"|"fraction_of_gemm"|"speedup"|"error"' "$LOGS/bench.log" 2>/dev/null | sed 's/^/    /'
  echo "  training steps:"
  grep -hE '"train_step"' "$LOGS/train.log" 2>/dev/null | sed 's/^/    /'
  echo "  phases:"
  printf '%s\n' "${SUMMARY[@]}"
  echo "  total:   $(( $(date +%s) - START ))s; logs in $LOGS"
  echo "  result:  $([[ $STATUS == 0 ]] && echo PASS || echo FAIL)"
  echo "========================================================"
} | tee "$LOGS/summary.txt"
exit $STATUS
