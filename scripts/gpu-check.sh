#!/usr/bin/env bash
# gpu-check: build loom with CUDA on a machine with an NVIDIA GPU, run the CUDA
# tests (ctest -L cuda), device timings (copy bandwidth, f32 and bf16 GEMM
# rates, kernels, the flash-attention forward at other tile shapes) and GPT-2
# 124M training steps in fp32 and bf16 (MFU against
# the measured bf16 GEMM rate), and print one summary block.
# Meant for a short-lived GPU machine: builds only what the CUDA tests need and
# keeps to a time budget (default 540 s, all phases together).
#
#   scripts/gpu-check.sh               configure, build, test, time, summarise
#   scripts/gpu-check.sh --prebuilt DIR  skip the build: take loom_cuda_tests and
#                                      loom-bench from DIR (made by --stage-prebuilt);
#                                      builds after all when they cannot load
#   scripts/gpu-check.sh --stage-prebuilt  build those (and loom-flash-shapes) here (CUDA compiles
#                                      without a GPU) into build-gpu-bin/, to carry,
#                                      xz-compressed (each statically linked binary is
#                                      about 15 MiB, 3.5 compressed: three of them and
#                                      build-gpu-deps/ would not fit the 64 MiB a
#                                      device call carries); --prebuilt unpacks them
#   scripts/gpu-check.sh --stage-deps  run on a machine that has the build
#                                      dependencies installed (Debian packages
#                                      nlohmann-json3-dev, libeigen3-dev, catch2,
#                                      zlib1g-dev; cuDNN's frontend headers):
#                                      copies their headers, CMake
#                                      packages and libz into build-gpu-deps/ for a bare
#                                      GPU machine (about 12 MiB; git ignores it as
#                                      a build* folder, so carry it explicitly)
#
# Building costs minutes of a short GPU lease; the binaries built on a machine
# with the same toolkit and an older or equal glibc load there, the vendor
# libraries (cuBLAS, cuDNN, NCCL, cuFFT) found on the GPU machine's library path
# or in its Python's nvidia-* wheels.
# When build-gpu-deps/ exists the build looks there first (CMAKE_PREFIX_PATH).
# Environment:
#   OUT                      logs and summary.txt go there (else <build>/gpu-check-logs)
#   LOOM_GPU_BUILD_DIR       build directory (default build-gpu)
#   LOOM_JOBS                parallel build jobs (default 16)
#   LOOM_CUDA_ARCH           CMAKE_CUDA_ARCHITECTURES (default 90a: H100/H200 with
#                            their warpgroup products; plain 90 builds no wgmma code)
#   LOOM_GPU_CHECK_BUDGET    seconds for the whole run (default 540)
#   LOOM_GPU_CHECK_VARIANTS  the kernel variants to check (default: every one that
#                            `loom_cuda_tests variants` lists; "" for none): the CUDA
#                            suites they name run once with all of them on
#                            (LOOM_KERNEL_VARIANTS), then each one's bench sections
#                            without and with it, in turns (variant-NAME.log; a
#                            table in the summary)
#   LOOM_GPU_CHECK_NCU       space-separated regexes of mangled kernel names: each
#                            one's first launch in `loom_cuda_tests bench` profiled
#                            by Nsight Compute (ncu-N.txt; occupancy, DRAM and SM
#                            throughput, stalls in the summary); SECTION:REGEX runs
#                            only that bench section (e.g. norms768:norm_warp_rows_kernel),
#                            seconds instead of the whole bench's minute or two (a
#                            regex containing ':' needs a section, or an empty one,
#                            before it); the kernels as they are, no variant on
# Exit status: 0 when the build and every CUDA test passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# The kernels as they are, unless the variants' phase turns one on for a run.
unset LOOM_KERNEL_VARIANTS

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
ARCH=${LOOM_CUDA_ARCH:-90a}
BUDGET=${LOOM_GPU_CHECK_BUDGET:-540}
TARGETS=(loom_cuda_tests loom-bench loom-flash-shapes)

# The configure line, here and on the GPU machine alike.
cmake_args() {
  local source=$ROOT build=$BUILD
  CMAKE_ARGS=(-S "$source" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$ARCH"
              -DLOOM_MPI=OFF -DLOOM_BUILD_EXAMPLES=OFF -DLOOM_BUILD_BENCHMARKS=ON)
  command -v ninja >/dev/null && [[ ! -f "$build/Makefile" ]] && CMAKE_ARGS+=(-G Ninja)
  if [[ -d "$ROOT/build-gpu-deps" ]]; then
    CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$ROOT/build-gpu-deps" "-DZLIB_INCLUDE_DIR=$ROOT/build-gpu-deps/include"
                 "-DZLIB_LIBRARY=$ROOT/build-gpu-deps/lib/libz.so")
  fi
  [[ -z "${CUDACXX:-}" && -x /usr/local/cuda/bin/nvcc ]] && export CUDACXX=/usr/local/cuda/bin/nvcc
  # cuDNN and NCCL may come as pip wheels (nvidia-cudnn-*, nvidia-nccl-*) rather
  # than with the toolkit: offer their folders to cmake/cuda_library.cmake.
  local pip_nvidia
  pip_nvidia=$(python3 -c "import nvidia; print(';'.join(p + '/' + d for p in nvidia.__path__ for d in ('cudnn', 'nccl')))" \
                 2>/dev/null || true)
  [[ -n "$pip_nvidia" ]] && CMAKE_ARGS+=("-DLOOM_CUDA_LIBRARY_HINTS=$pip_nvidia")
  return 0
}

# xz_to SOURCE TARGET: SOURCE compressed into TARGET (xz, or Python's lzma).
xz_to() {
  if command -v xz >/dev/null; then
    xz -T0 -6 -c "$1" >"$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], "rb"), lzma.open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

if [[ "${1:-}" == "--stage-prebuilt" ]]; then
  set -e
  cmake_args
  cmake "${CMAKE_ARGS[@]}"
  cmake --build "$BUILD" -j "${LOOM_JOBS:-2}" --target "${TARGETS[@]}"
  rm -rf "$ROOT/build-gpu-bin"
  mkdir -p "$ROOT/build-gpu-bin"
  for b in loom_cuda_tests loom-bench loom-flash-shapes; do xz_to "$BUILD/bin/$b" "$ROOT/build-gpu-bin/$b.xz"; done
  git -C "$ROOT" describe --always --dirty >"$ROOT/build-gpu-bin/commit"  # "-dirty": uncommitted changes built in
  du -sh "$ROOT/build-gpu-bin"
  echo "staged into build-gpu-bin/; carry it and run scripts/gpu-check.sh --prebuilt build-gpu-bin"
  exit 0
fi
LOGS=${OUT:-$ROOT/$BUILD/gpu-check-logs}
mkdir -p "$LOGS"

# unpack_prebuilt DIR: the staged binaries, DIR/NAME.xz, unpacked into a
# folder of their own (xz, or Python's lzma where xz is missing); binaries
# staged uncompressed are taken where they are. Prints the folder.
unpack_prebuilt() {
  local dir=$1
  compgen -G "$dir/*.xz" >/dev/null || { (cd "$dir" && pwd); return; }
  local into=${TMPDIR:-/tmp}/loom-prebuilt-$$
  mkdir -p "$into"
  cp "$dir/commit" "$into/" 2>/dev/null || true
  local f name
  for f in "$dir"/*.xz; do
    name=$(basename "$f" .xz)
    if command -v xz >/dev/null; then
      xz -d -c "$f" >"$into/$name"
    else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$f" "$into/$name"
    fi || { rm -rf "$into"; return 1; }
    chmod +x "$into/$name"
  done
  echo "$into"
}

PREBUILT=""
if [[ "${1:-}" == "--prebuilt" ]]; then
  has() { [[ -f "${2:-}/$1" || -f "${2:-}/$1.xz" ]]; }
  [[ -n "${2:-}" ]] && has loom_cuda_tests "$2" && has loom-bench "$2" ||
    { echo "gpu-check: --prebuilt '${2:-}' holds no loom_cuda_tests and loom-bench (scripts/gpu-check.sh --stage-prebuilt makes them)" >&2; exit 2; }
  PREBUILT=$(unpack_prebuilt "$2") ||
    { echo "gpu-check: could not unpack the binaries in '$2' (xz, or python3's lzma)" >&2; exit 2; }
  [[ "$PREBUILT" == */loom-prebuilt-$$ ]] && trap 'rm -rf "$PREBUILT"' EXIT
fi
rm -f "$LOGS"/{env,configure,build,suites,sanitizer,racecheck,bench,shapes,train}.log "$LOGS"/variant-*.log "$LOGS/summary.txt"  # this run's logs only
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
  echo "==> $name" >>"$log"
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
  tail -n 12 "$log"
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
  ldd --version 2>&1 | head -n 1
  echo "nproc: $(nproc)"
} >"$LOGS/env.log" 2>&1
cat "$LOGS/env.log"

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)

# loads BIN: true when the dynamic loader finds every library it needs.
loads() { ! ldd "$1" 2>&1 | grep -q "not found"; }
# The vendor libraries' folders on a machine where they came as pip wheels
# (nvidia/cublas/lib, nvidia/cudnn/lib, ...) or with the toolkit.
vendor_library_path() {
  local dirs
  dirs=$(python3 -c "import nvidia, glob, os; print(':'.join(sorted({os.path.dirname(f) for p in nvidia.__path__ for f in glob.glob(p + '/*/lib/lib*.so*')})))" \
           2>/dev/null || true)
  echo "${dirs:+$dirs:}/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib"
}

# --- binaries: carried, or built here -------------------------------------------
BIN=""
if [[ -n "$PREBUILT" ]]; then
  if ! loads "$PREBUILT/loom_cuda_tests"; then
    export LD_LIBRARY_PATH="$(vendor_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  {
    echo "prebuilt: $PREBUILT (commit $(cat "$PREBUILT/commit" 2>/dev/null || echo '?'))"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    ldd "$PREBUILT/loom_cuda_tests"
  } >>"$LOGS/env.log" 2>&1
  if loads "$PREBUILT/loom_cuda_tests" && loads "$PREBUILT/loom-bench"; then
    BIN=$PREBUILT
    SUMMARY+=("$(printf '  %-8s %6s  %s' ok - "prebuilt binaries load ($PREBUILT)")")
  else
    echo "prebuilt binaries miss libraries (see env.log): building here"
    SUMMARY+=("$(printf '  %-8s %6s  %s' FAIL - "prebuilt binaries miss libraries; built here instead")")
  fi
fi
if [[ -z "$BIN" ]]; then
  cmake_args
  if run_phase "configure (CUDA archs $ARCH)" "$LOGS/configure.log" 120 cmake "${CMAKE_ARGS[@]}" &&
     run_phase "build ${TARGETS[*]} (-j$JOBS)" "$LOGS/build.log" 420 \
       cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"; then
    BIN=$ROOT/$BUILD/bin
  fi
fi
[[ -n "$BIN" ]] || STATUS=1

# --- tests: the cuda suites (what ctest -L cuda runs, one suite each) --------------
TEST_LINE="not run"
if [[ -n "$BIN" ]]; then
  for suite_limit in runtime:60 kernels:150 ops:150 models:180; do
    suite=${suite_limit%:*}
    run_phase "cuda.$suite" "$LOGS/suites.log" "${suite_limit#*:}" "$BIN/loom_cuda_tests" "$suite"
    rc=$?
    if (( rc == 77 )); then
      STATUS=1  # a skip means no device was found: not a pass
      TEST_LINE="SKIPPED: $(grep -m1 -o 'skipped: no GPU.*' "$LOGS/suites.log")"
      break
    fi
    (( rc == 0 )) || STATUS=1
  done
  [[ "$TEST_LINE" == "not run" ]] && TEST_LINE="$(grep -cE '^cuda\.[a-z]+: ' "$LOGS/suites.log") suites reported"
fi

# --- timings -----------------------------------------------------------------------
BENCH_LINE="not run"
if [[ -n "$BIN" ]]; then
  if run_phase "CUDA timings (loom_cuda_tests bench)" "$LOGS/bench.log" 180 "$BIN/loom_cuda_tests" bench; then
    BENCH_LINE="$(grep -c '"median_ms"' "$LOGS/bench.log") timings in bench.log"
  else
    BENCH_LINE="failed: see bench.log"
  fi
  # The flash-attention forward at other tile shapes than loom's; a shape
  # whose output differs from loom's fails the check (exit 1).
  if [[ -x "$BIN/loom-flash-shapes" ]]; then
    run_phase "flash-attention tile shapes (loom-flash-shapes)" "$LOGS/shapes.log" 90 "$BIN/loom-flash-shapes"
    (( $? == 1 )) && STATUS=1
  else
    SUMMARY+=("$(printf '  %-8s %6s  %s' SKIP - "loom-flash-shapes not in $BIN")")
  fi
  # GPT-2 124M (12 layers, width 768, sequence 1024, batch 8, the vocabulary
  # padded to 50304), random tokens; MFU against the bf16 GEMM rate measured
  # above. The bf16 run also prints where its step's time goes (kernel profile).
  PEAK=$(grep -h '"shape": "8192^3 bf16"' "$LOGS/bench.log" | grep -o '"tflops": [0-9.]*' | awk '{print $2}' | head -n 1)
  for precision in fp32 bf16; do
    run_phase "train-step GPT-2 124M $precision" "$LOGS/train.log" 150 \
      "$BIN/loom-bench" train-step --recipe "$ROOT/benchmarks/gpt2-124m.json" --synthetic 1 \
      --set train.device=cuda --set "train.precision=$precision" --steps 10 --warmup 3 \
      ${PEAK:+--peak-tflops "$PEAK"} $([[ $precision == bf16 ]] && echo --profile 2) || true
  done
  # The unpadded GPT-2 vocabulary (50257 rows: unaligned rows for cuBLAS).
  run_phase "train-step GPT-2 124M bf16, vocab 50257" "$LOGS/train.log" 100 \
    "$BIN/loom-bench" train-step --recipe "$ROOT/benchmarks/gpt2-124m.json" --synthetic 1 \
    --set train.device=cuda --set train.precision=bf16 --set model.vocab_size=50257 --steps 10 --warmup 3 \
    ${PEAK:+--peak-tflops "$PEAK"} || true
fi

# --- variants: other versions of some kernels, timed against these in turns -----------
# Kernel variants are on main, off unless LOOM_KERNEL_VARIANTS names them
# (src/kernels/variants.hpp); `loom_cuda_tests variants` lists each one's
# suites and bench sections. The suites they name run once with all of them
# on (a kernel the emulator passed may still be wrong on the device, and a
# wrong kernel's timings are not compared; one run keeps the check inside its
# budget, and a failure names the test, whose kernel names the variant). Then
# each one's sections run without it and with it, in turns (the device's
# clocks and neighbours drift between minutes; each turn is seconds).
VARIANT_LINES=()
if [[ -n "$BIN" ]]; then
  if ! variant_list=$("$BIN/loom_cuda_tests" variants 2>"$LOGS/variants.log"); then
    VARIANT_LINES+=("the variants' list is broken, none run: $(head -n 3 "$LOGS/variants.log" | tr '\n' ' ')")
    variant_list=""
  fi
  for wanted in ${LOOM_GPU_CHECK_VARIANTS//,/ }; do
    grep -q "^$wanted"$'\t' <<<"$variant_list" ||
      VARIANT_LINES+=("LOOM_GPU_CHECK_VARIANTS names '$wanted', which this build does not have")
  done
  names=() all_suites=""
  declare -A sections_of=()
  while IFS=$'\t' read -r name suites sections summary; do
    [[ -n "$name" && -n "$sections" ]] || continue
    if [[ -n "${LOOM_GPU_CHECK_VARIANTS+set}" && " ${LOOM_GPU_CHECK_VARIANTS//,/ } " != *" $name "* ]]; then
      continue
    fi
    names+=("$name")
    sections_of[$name]=$sections
    VARIANT_LINES+=("$name: $summary")
    for suite in $suites; do [[ " $all_suites " == *" $suite "* ]] || all_suites+=" $suite"; done
  done <<<"$variant_list"
  variants_ok=1
  if (( ${#names[@]} > 0 )) && [[ -n "${all_suites// /}" ]]; then
    on=$(IFS=,; echo "${names[*]}")
    run_phase "variants $on: suites$all_suites" "$LOGS/variant-suites.log" 240 \
      env LOOM_KERNEL_VARIANTS="$on" bash -c 'for suite in $1; do "$2" "$suite" || exit; done' _ "$all_suites" \
      "$BIN/loom_cuda_tests" </dev/null
    rc=$?
    case $rc in
      0) verdict=passed ;;
      99) verdict="not run (time budget spent)" ;;
      77) verdict="skipped (no GPU)" ;;
      124 | 137) verdict="timed out" ;;
      *) verdict="FAILED ($rc)" ;;
    esac
    VARIANT_LINES+=("suites$all_suites with all of them on: $verdict$( ((rc != 0)) && echo ': none timed')")
    if (( rc != 0 )); then
      variants_ok=0
      while IFS= read -r line; do VARIANT_LINES+=("  $line"); done < <(
        grep -hE "^  failed: " "$LOGS/variant-suites.log" 2>/dev/null | head -n 10 | cut -c1-200)
    fi
  fi
  (( variants_ok )) || names=()
  for name in "${names[@]}"; do
    sections=${sections_of[$name]}
    VARIANT_LINES+=("$name, bench $sections:")
    run_phase "variant $name: bench $sections, in turns" "$LOGS/variant-$name.log" 90 bash -c '
      for turn in 1 2; do
        echo "== main $turn"; "$1" bench $2 || exit
        echo "== $3 $turn"; LOOM_KERNEL_VARIANTS=$3 "$1" bench $2 || exit
      done' _ "$BIN/loom_cuda_tests" "$sections" "$name" </dev/null
    if [[ ! -f "$LOGS/variant-$name.log" ]]; then  # skipped: the time budget was spent
      VARIANT_LINES+=("  not run")
      continue
    fi
    while IFS= read -r line; do VARIANT_LINES+=("  $line"); done < <(python3 - "$LOGS/variant-$name.log" "$name" <<'PY' 2>&1
import json, re, statistics, sys
log, name = sys.argv[1], sys.argv[2]
times, who = {}, None
for line in open(log):
    m = re.match(r"== (\S+) \d+$", line.strip())
    if m:
        who = "main" if m.group(1) == "main" else (m.group(1) if m.group(1) == name else None)
        continue
    if who and line.startswith("{") and '"median_ms"' in line:
        r = json.loads(line)
        times.setdefault((r["name"], r["shape"]), {}).setdefault(who, []).append(r["median_ms"])
for (kernel, shape), t in times.items():
    if "main" in t and name in t:
        a, b = statistics.median(t["main"]), statistics.median(t[name])
        print(f"{kernel} {shape}: main {a:.4f} ms, variant {b:.4f} ms, speed-up {a / b:.3f}x")
PY
    )
  done
fi

# --- memory checker: the runtime and kernel suites under compute-sanitizer -----------
# Out-of-bounds and misaligned accesses, leaks of device memory. Failed API
# calls are not reported: loom checks each itself, and the runtime suite makes
# cudaMalloc fail on purpose (out of memory must be a recoverable loom::Error).
SANITIZER=$(command -v compute-sanitizer ||
            ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null |
            head -n 1)
SANITIZER_LINE="not run"
if [[ -n "$BIN" && -n "$SANITIZER" ]]; then
  SANITIZER_LINE="clean"
  for suite in runtime kernels; do
    run_phase "compute-sanitizer memcheck cuda.$suite" "$LOGS/sanitizer.log" 120 \
      "$SANITIZER" --tool memcheck --report-api-errors no --error-exitcode 3 "$BIN/loom_cuda_tests" "$suite"
    rc=$?
    if (( rc == 3 )); then SANITIZER_LINE="errors: see sanitizer.log"; STATUS=1;
    elif (( rc != 0 )) && [[ "$SANITIZER_LINE" == clean ]]; then SANITIZER_LINE="incomplete (rc $rc): see sanitizer.log"; fi
  done
elif [[ -n "$BIN" ]]; then
  SANITIZER_LINE="compute-sanitizer not found"
fi
# Shared-memory races (a missing __syncthreads between a write and another
# thread's read) in the kernel suite, which launches every hand-written tile
# kernel: the emulator's serial schedules catch most, not all (cuda/README.md).
RACECHECK_LINE="not run"
if [[ -n "$BIN" && -n "$SANITIZER" ]]; then
  run_phase "compute-sanitizer racecheck cuda.kernels" "$LOGS/racecheck.log" 180 \
    "$SANITIZER" --tool racecheck --error-exitcode 3 "$BIN/loom_cuda_tests" kernels
  rc=$?
  if (( rc == 0 )); then RACECHECK_LINE="clean";
  elif (( rc == 3 )); then RACECHECK_LINE="hazards: see racecheck.log"; STATUS=1;
  else RACECHECK_LINE="incomplete (rc $rc): see racecheck.log"; fi
fi

# --- Nsight Compute over named kernels (LOOM_GPU_CHECK_NCU) ----------------------------
NCU_LINES=()
if [[ -n "$BIN" && -n "${LOOM_GPU_CHECK_NCU:-}" ]]; then
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)
  if [[ -z "$NCU" ]]; then
    NCU_LINES+=("ncu not found")
  else
    n=0
    for entry in $LOOM_GPU_CHECK_NCU; do
      n=$((n + 1))
      kernel=${entry#*:}
      sections=""
      [[ "$entry" == *:* ]] && sections=${entry%%:*}
      run_phase "ncu $kernel${sections:+ (bench $sections)}" "$LOGS/ncu-$n.txt" 90 "$NCU" --kernel-name-base mangled \
        -k "regex:$kernel" -c 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
        --section WarpStateStats --section MemoryWorkloadAnalysis "$BIN/loom_cuda_tests" bench $sections || true
      NCU_LINES+=("$kernel (ncu-$n.txt):")
      while IFS= read -r line; do NCU_LINES+=("  $line"); done < <(grep -hE \
        "Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per Thread|Achieved Occupancy|Theoretical Occupancy|Avg. Active Threads" \
        "$LOGS/ncu-$n.txt" | sed 's/  */ /g')
    done
  fi
fi

# --- summary -------------------------------------------------------------------------
{
  echo
  echo "==================== loom gpu-check ===================="
  echo "  gpu:     ${GPU_NAME:-none found}"
  echo "  commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "  build:   ${BIN:-none}$([[ -n "$PREBUILT" && "$BIN" == "$PREBUILT" ]] && echo " (prebuilt at $(cat "$PREBUILT/commit" 2>/dev/null); this tree: $(git -C "$ROOT" describe --always --dirty 2>/dev/null))"), Release, CUDA archs $ARCH"
  echo "  tests:   $TEST_LINE"
  grep -hE "^cuda\.(runtime|kernels|ops|models): " "$LOGS/suites.log" 2>/dev/null | sed 's/^/    /'
  grep -hE "^  failed: " "$LOGS/suites.log" 2>/dev/null | head -n 30 | cut -c1-300 | sed 's/^/  /'
  echo "  memcheck: $SANITIZER_LINE"
  grep -hE "ERROR SUMMARY" "$LOGS/sanitizer.log" 2>/dev/null | sed 's/^/    /'
  echo "  racecheck: $RACECHECK_LINE"
  grep -hE "RACECHECK SUMMARY|ERROR SUMMARY" "$LOGS/racecheck.log" 2>/dev/null | sed 's/^/    /'
  echo "  timings: $BENCH_LINE"
  grep -hE '"median_ms"|"fraction_of_gemm"|"speedup"|"error"|"allocator"' "$LOGS/bench.log" 2>/dev/null | sed 's/^/    /'
  echo "  flash-attention tile shapes:"
  grep -hE '"flash_forward_shape"' "$LOGS/shapes.log" 2>/dev/null | sed 's/^/    /'
  if (( ${#VARIANT_LINES[@]} > 0 )); then
    echo "  variants (speed-up > 1: the variant is faster):"
    printf '    %s\n' "${VARIANT_LINES[@]}"
  fi
  if (( ${#NCU_LINES[@]} > 0 )); then
    echo "  nsight compute:"
    printf '    %s\n' "${NCU_LINES[@]}"
  fi
  echo "  training steps:"
  grep -hE '"train_step"' "$LOGS/train.log" 2>/dev/null | sed 's/^/    /'
  echo "  phases:"
  printf '%s\n' "${SUMMARY[@]}"
  echo "  total:   $(( $(date +%s) - START ))s; logs in $LOGS"
  echo "  result:  $([[ $STATUS == 0 ]] && echo PASS || echo FAIL)"
  echo "========================================================"
} | tee "$LOGS/summary.txt"
exit $STATUS
