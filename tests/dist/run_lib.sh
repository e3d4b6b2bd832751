# shellcheck shell=sh disable=SC2154
# Sourced by the loom-train tests (sh). Set $train (loom-train), $mpiexec and
# $dir (a scratch directory) first.
#
#   train NAME NP RECIPE [ARGS...]   runs loom-train on NP ranks (1: one
#       process, no mpirun) with --quiet --out $dir/NAME, logging to
#       $dir/NAME.log (printed when the run fails) and saying how long it took
#   refused NP PATTERN RECIPE [ARGS...]  loom-train on NP ranks must fail
#       (within 60 s) printing PATTERN (expect_abort.sh)
#   compare ARGS...                  compare_metrics.py ARGS (exits on failure)
#   same_layout CKPT_A CKPT_B        same_layout.py (exits on failure)
here=$(cd "$(dirname "$0")" && pwd)

train() {
  name=$1; np=$2; shift 2
  start=$(date +%s.%N)
  if [ "$np" = 1 ]; then
    set -- "$train" "$@"
  else
    set -- "$mpiexec" --allow-run-as-root --oversubscribe -np "$np" "$train" "$@"
  fi
  "$@" --quiet --out "$dir/$name" >"$dir/$name.log" 2>&1 || {
    cat "$dir/$name.log"
    echo "FAIL: run '$name' on $np rank(s) failed"
    exit 1
  }
  echo "ran $name on $np rank(s) in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}

refused() {
  np=$1; pattern=$2; shift 2
  "$here/../support/expect_abort.sh" 60 "$pattern" "$mpiexec" --allow-run-as-root --oversubscribe -np "$np" "$train" "$@" \
    --quiet --out "$dir/refused" >"$dir/refused.log" 2>&1 || { cat "$dir/refused.log"; exit 1; }
  echo "OK: refused on $np rank(s) with '$pattern'"
}

compare() { python3 "$here/compare_metrics.py" "$@" || exit 1; }
same_layout() { python3 "$here/same_layout.py" "$@" || exit 1; }
