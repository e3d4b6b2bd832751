#!/usr/bin/env bash
# Installs dependencies, builds loom (Release) into build/ and trains the
# example MLP on Fashion-MNIST. Arguments are passed through to train_mlp:
#   scripts/quickstart.sh [train_mlp args...]
# Set LOOM_SKIP_DEPS=1 to skip scripts/install-deps.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS=${LOOM_JOBS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [[ "${LOOM_SKIP_DEPS:-0}" != "1" ]]; then
  echo "==> dependencies"
  scripts/install-deps.sh </dev/null
fi

echo "==> configure (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_EXAMPLES=ON

echo "==> build train_mlp"
if ! cmake --build build -j"$JOBS" --target train_mlp; then
  echo "quickstart: building the 'train_mlp' target failed (is examples/ present with a train_mlp target?)" >&2
  exit 1
fi

BIN=build/bin/train_mlp
if [[ ! -x "$BIN" ]]; then
  echo "quickstart: $BIN not found after the build; expected the examples to produce it" >&2
  exit 1
fi

echo "==> $BIN $*"
exec "$BIN" "$@"
