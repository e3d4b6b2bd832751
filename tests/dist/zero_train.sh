#!/bin/sh
# zero_train.sh LOOM_TRAIN MPIEXEC MODE: ZeRO-1 (dist.zero) in loom-train on
# the tiny CNN recipe (tiny-cnn.json).
#
#   equal   2 ranks with dist.zero=true log the losses, grad norms and lrs of
#           2 ranks with DataParallel + AdamW (1e-6 relative), with 2
#           micro-batches per step and gradient clipping at work.
#   resume  checkpoints are in the one-process layout and resume at another
#           world size, with the global batch fixed at 12: a 2-rank ZeRO run
#           (6 per rank) checkpointed at step 4 resumes on 1 rank (12, plain
#           AdamW) and on 3 ranks (4 per rank, ZeRO), and a 1-rank AdamW
#           checkpoint resumes on 2 ranks with ZeRO; steps 5-8 of each equal
#           the uninterrupted run (1e-5 relative).
set -eu
train=$1; mpiexec=$2; mode=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=tests/dist/run_lib.sh
. "$(dirname "$0")/run_lib.sh"
recipe=$here/tiny-cnn.json
ckpt=checkpoints/step-00000004

case $mode in
equal)
  train dp 2 "$recipe" --set train.batch_size=8 --set train.grad_accum=2
  train zero 2 "$recipe" --set train.batch_size=8 --set train.grad_accum=2 --set dist.zero=true
  grep -q "ZeRO-1" "$dir/zero.log" || { cat "$dir/zero.log"; echo "FAIL: the ZeRO run does not say it runs ZeRO-1"; exit 1; }
  python3 - "$dir/dp/metrics.jsonl" <<'PY' || exit 1
import json, sys
norms = [json.loads(l)["grad_norm"] for l in open(sys.argv[1]) if "loss" in json.loads(l)]
assert max(norms) > 1.0, f"clipping (train.clip_grad_norm 1) never acts: grad norms {norms}"
print(f"OK: gradient clipping acts (largest grad norm {max(norms):.3f} > 1)")
PY
  compare "$dir/dp" "$dir/zero" --steps 1-8 --rtol 1e-6 --what "ZeRO-1 vs DataParallel on 2 ranks"
  ;;
resume)
  train zero2 2 "$recipe" --set train.batch_size=6 --set dist.zero=true
  train adam1 1 "$recipe" --set train.batch_size=12
  compare "$dir/adam1" "$dir/zero2" --steps 1-8 --what "2 ranks ZeRO vs 1 process AdamW"
  same_layout "$dir/zero2/$ckpt" "$dir/adam1/$ckpt"
  train zero2_on1 1 "$recipe" --set train.batch_size=12 --resume "$dir/zero2/$ckpt"
  compare "$dir/zero2" "$dir/zero2_on1" --steps 5-8 --what "ZeRO 2-rank checkpoint resumed on 1 rank"
  train zero2_on3 3 "$recipe" --set train.batch_size=4 --set dist.zero=true --resume "$dir/zero2/$ckpt"
  compare "$dir/zero2" "$dir/zero2_on3" --steps 5-8 --what "ZeRO 2-rank checkpoint resumed on 3 ranks with ZeRO"
  train adam1_on2 2 "$recipe" --set train.batch_size=6 --set dist.zero=true --resume "$dir/adam1/$ckpt"
  compare "$dir/adam1" "$dir/adam1_on2" --steps 5-8 --what "AdamW 1-rank checkpoint resumed on 2 ranks with ZeRO"
  ;;
*)
  echo "zero_train.sh: unknown mode '$mode' (equal or resume)"; exit 2 ;;
esac
