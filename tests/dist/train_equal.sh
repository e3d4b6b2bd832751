#!/bin/sh
# train_equal.sh LOOM_TRAIN MPIEXEC: `mpirun -np 2 loom-train` with
# train.batch_size 16 per rank must log the same losses (1e-5 relative) as
# one process with batch_size 32, on a tiny CNN recipe (tiny-cnn.json); only rank 0 writes
# the run directory (metrics, checkpoints, eval.json).
set -eu
train=$1; mpiexec=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
recipe=$(dirname "$0")/tiny-cnn.json  # its own recipe: no dropout (ranks share the dropout seed)
common="--quiet"
# shellcheck disable=SC2086
"$train" "$recipe" $common --set train.batch_size=32 --out "$dir/one" >"$dir/one.log" 2>&1 || { cat "$dir/one.log"; exit 1; }
# shellcheck disable=SC2086
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$train" "$recipe" $common --set train.batch_size=16 --out "$dir/two" \
  >"$dir/two.log" 2>&1 || { cat "$dir/two.log"; exit 1; }
python3 - "$dir/one" "$dir/two" <<'PY'
import json, os, sys
one, two = sys.argv[1], sys.argv[2]
def losses(d):
    return [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if "loss" in json.loads(l)]
a, b = losses(one), losses(two)
assert len(a) == len(b) == 8, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for key in ("loss", "grad_norm"):
        rel = abs(x[key] - y[key]) / max(abs(x[key]), 1e-12)
        worst = max(worst, rel)
        assert rel < 1e-5, f"step {x['step']} {key}: one process {x[key]!r}, two ranks {y[key]!r} (rel {rel:.3g})"
for f in ("eval.json", "config.json", "checkpoints/step-00000004/manifest.json", "checkpoints/step-00000008/manifest.json"):
    assert os.path.exists(os.path.join(two, f)), f"two ranks: {f} missing"
print(f"OK: 8 steps, losses and grad norms agree, worst relative difference {worst:.3g}; "
      f"final loss {a[-1]['loss']:.6f} vs {b[-1]['loss']:.6f}")
PY
