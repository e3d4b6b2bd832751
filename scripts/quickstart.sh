#!/usr/bin/env bash
# Installs dependencies, builds loom (Release) into build/, then runs the main
# job: a short Fashion-MNIST training with loom-train (recipes/fashion-vit.json,
# 300 steps, about a minute on 2 cores) and its evaluation on the 10,000 test
# images. The run lands in runs/quickstart/ (config.json, metrics.jsonl,
# checkpoints/, eval.json).
#   scripts/quickstart.sh [extra loom-train arguments, e.g. --set train.steps=2000]
# Set LOOM_SKIP_DEPS=1 to skip scripts/install-deps.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS=${LOOM_JOBS:-2}

if [[ "${LOOM_SKIP_DEPS:-0}" != "1" ]]; then
  echo "==> dependencies"
  scripts/install-deps.sh </dev/null
fi

echo "==> configure (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null

echo "==> build loom-train"
cmake --build build -j"$JOBS" --target loom-train

OUT=runs/quickstart
rm -rf "$OUT"
echo "==> build/bin/loom-train recipes/fashion-vit.json --set train.steps=300 --out $OUT $*"
build/bin/loom-train recipes/fashion-vit.json --set train.steps=300 --set train.eval_every=0 \
  --set train.checkpoint_every=0 --set optim.warmup_steps=30 --out "$OUT" "$@"
echo "==> $OUT/eval.json"
cat "$OUT/eval.json"
