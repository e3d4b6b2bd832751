#!/usr/bin/env bash
# Runs safetensors_interop.py with the first Python that has both
# `safetensors` and `numpy` ($LOOM_PYTHON, python3, /usr/bin/python3);
# exits 77, which ctest reports as skipped, when there is none.
# usage: run_interop.sh TOOL SCRIPT WORK_DIR
set -u
tool=$1 script=$2 work=$3
for py in "${LOOM_PYTHON:-}" python3 /usr/bin/python3; do
  [[ -n "$py" ]] && command -v "$py" >/dev/null 2>&1 || continue
  if "$py" -c "import safetensors, numpy" >/dev/null 2>&1; then
    exec "$py" "$script" "$tool" "$work"
  fi
done
echo "SKIPPED: no python3 with the safetensors and numpy modules (pip install safetensors numpy)"
exit 77
