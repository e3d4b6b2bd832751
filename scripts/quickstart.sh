#!/usr/bin/env bash
# The main job of loom, end to end on a fresh machine:
#   1. installs dependencies and builds loom (Release) into build/;
#   2. builds the tri-modal dataset (data/trimodal: scenes, English and Chinese
#      captions, speech, videos; about a minute);
#   3. pretrains recipes/omni-tiny.json on 2 MPI ranks (about 10 minutes on 2
#      idle cores) into runs/omni-tiny, and evaluates it (eval.json);
#   4. fine-tunes Fashion-MNIST classification with 1% of the labels from the
#      pretrained weights and from scratch (a minute each);
#   5. writes pictures of what the model sees and says (runs/omni-tiny/examples)
#      and prints the summary table.
#   scripts/quickstart.sh [extra loom-train arguments for the pretraining, e.g. --set train.steps=300]
# LOOM_SKIP_DEPS=1 skips scripts/install-deps.sh; LOOM_RANKS sets the MPI ranks (default 2).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS=${LOOM_JOBS:-2}
RANKS=${LOOM_RANKS:-2}

if [[ "${LOOM_SKIP_DEPS:-0}" != "1" ]]; then
  echo "==> dependencies"
  scripts/install-deps.sh </dev/null
fi

echo "==> configure (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
echo "==> build loom-train, loom-eval, loom-data"
cmake --build build -j"$JOBS" --target loom-train loom-eval loom-data

if [[ ! -f data/trimodal/manifest.json ]]; then
  echo "==> build/bin/loom-data trimodal --out data/trimodal"
  build/bin/loom-data trimodal --out data/trimodal
fi

launch=()
if command -v mpirun >/dev/null && [[ "$RANKS" -gt 1 ]]; then
  launch=(mpirun -np "$RANKS")
  [[ "$(id -u)" == "0" ]] && launch+=(--allow-run-as-root)
  launch+=(--oversubscribe)
fi

rm -rf runs/omni-tiny runs/omni-classify-1pct runs/omni-classify-1pct-scratch
echo "==> ${launch[*]} build/bin/loom-train recipes/omni-tiny.json --out runs/omni-tiny $*"
start=$SECONDS
"${launch[@]}" build/bin/loom-train recipes/omni-tiny.json --out runs/omni-tiny "$@"
echo "==> pretraining and evaluation took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"

echo "==> fine-tuning with 1% of the Fashion-MNIST labels: from the pretrained weights, then from scratch"
build/bin/loom-train recipes/omni-classify-1pct.json --out runs/omni-classify-1pct --quiet
build/bin/loom-train recipes/omni-classify-1pct.json --set train.init_from= --out runs/omni-classify-1pct-scratch --quiet

mkdir -p runs/omni-tiny/examples
echo "==> pictures: build/bin/loom-eval runs/omni-tiny --examples runs/omni-tiny/examples"
build/bin/loom-eval runs/omni-tiny --set eval.zero_shot_limit=1 --set eval.decode_limit=6 \
  --out runs/omni-tiny/examples/eval.json --examples runs/omni-tiny/examples >/dev/null

echo "==> summary (runs/omni-tiny/eval.json)"
python3 scripts/omni_summary.py runs/omni-tiny runs/omni-classify-1pct runs/omni-classify-1pct-scratch
