#!/bin/sh
# expect_abort.sh LIMIT_S PATTERN COMMAND...: runs COMMAND, which must fail
# (non-zero exit) within LIMIT_S seconds (a hang is killed and reported) and
# print PATTERN. Used for the dist timeout tests and the SIMT emulator's
# deadlock and bad-schedule tests.
limit=$1; pattern=$2; shift 2
log=$(mktemp)
start=$(date +%s)
timeout "$limit" "$@" >"$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$log"
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0; expected an abort"; exit 1; fi
# timeout(1) exits 124 on its deadline; 137 is also what mpirun returns for a
# rank killed by SIGKILL, so only a 137 that took the whole limit is a hang.
if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$elapsed" -ge "$limit" ]; }; then
  echo "FAIL: the job hung (killed after ${limit} s)"; exit 1
fi
if ! grep -q "$pattern" "$log"; then echo "FAIL: no '$pattern' in the output"; exit 1; fi
echo "OK: exit status $rc after ${elapsed} s with '$pattern'"
rm -f "$log"
