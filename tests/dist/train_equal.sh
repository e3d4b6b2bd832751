#!/bin/sh
# train_equal.sh LOOM_TRAIN MPIEXEC: `mpirun -np 2 loom-train` with
# train.batch_size 16 per rank must log the same losses and grad norms (1e-5
# relative) as one process with batch_size 32, on a tiny CNN recipe
# (tiny-cnn.json: no dropout, since ranks share the dropout seed); only rank 0
# writes the run directory (metrics, checkpoints, eval.json).
set -eu
train=$1; mpiexec=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=tests/dist/run_lib.sh
. "$(dirname "$0")/run_lib.sh"
recipe=$here/tiny-cnn.json
train one 1 "$recipe" --set train.batch_size=32
train two 2 "$recipe" --set train.batch_size=16
compare "$dir/one" "$dir/two" --steps 1-8 --rtol 1e-5 --what "2 ranks x 16 vs 1 x 32"
for f in eval.json config.json checkpoints/step-00000004/manifest.json checkpoints/step-00000008/manifest.json; do
  [ -e "$dir/two/$f" ] || { echo "FAIL: two ranks: $f missing"; exit 1; }
done
echo "OK: only rank 0 wrote the run directory"
