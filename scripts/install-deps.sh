#!/usr/bin/env bash
# Installs every Debian package loom builds, tests or trains with (and
# OpenBLAS, the GEMM peer `loom-bench gemm` loads at run time; loom never links it).
# Idempotent: when everything is present it changes nothing and says so.
# Where the CUDA toolkit is, it also fetches cuDNN's C++ frontend headers once (below).
# Usage: scripts/install-deps.sh [--with-torch]   (torch is only a golden/benchmark reference)
# chromium (for the `browser` test of loom-serve's web page) is installed too; LOOM_BROWSER_TESTS=0 leaves it out
# (the test then reports Skipped).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev nlohmann-json3-dev catch2 zlib1g-dev
  openmpi-bin libopenmpi-dev
  clang libclang-rt-dev
  dataset-fashion-mnist fortunes fortunes-min fortunes-zh
  espeak-ng libespeak-ng-dev
  libcpp-httplib-dev
  libopenblas0-pthread
  python3-numpy python3-pip
)
if [[ "${1:-}" == "--with-torch" ]]; then
  packages+=(python3-torch python3-numpy)
fi
if [[ "${LOOM_BROWSER_TESTS:-1}" == "1" ]]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The reference safetensors package (PyPI only) for the interop test. Not a
# dependency of the library: without it that test reports itself skipped.
install_python_refs() {
  local py
  py=$(command -v python3 || true)
  [[ -n "$py" ]] || return 0
  if ! "$py" -c "import safetensors, numpy" >/dev/null 2>&1; then
    echo "install-deps: pip install safetensors numpy (for $py)"
    "$py" -m pip install --quiet --disable-pip-version-check safetensors numpy >/dev/null 2>&1 ||
      "$py" -m pip install --quiet --disable-pip-version-check --break-system-packages safetensors numpy >/dev/null 2>&1 ||
      echo "install-deps: warning: could not pip install safetensors; the interop test will be skipped"
  fi
}

# cuDNN's C++ frontend (header-only, NVIDIA's graph-API layer over cuDNN; on
# PyPI as nvidia-cudnn-frontend), for the cuDNN fused attention
# (cuda/attention_cudnn.cpp): only where the CUDA toolkit is. The wheel's
# headers go to /usr/local/share/cudnn-frontend-VERSION/include (extracted
# beside it, then moved into place: a failed fetch leaves nothing half
# there); nothing else of it is installed. Without them the CUDA build
# leaves that one kernel out and says so.
CUDNN_FRONTEND_VERSION=1.32.0
install_cudnn_frontend() {
  [[ -d /usr/local/cuda ]] || return 0
  local dest=/usr/local/share/cudnn-frontend-$CUDNN_FRONTEND_VERSION
  [[ -f $dest/include/cudnn_frontend.h ]] && return 0
  local py tmp
  py=$(command -v python3 || true)
  [[ -n "$py" ]] || return 0
  tmp=$(mktemp -d)
  echo "install-deps: cuDNN frontend $CUDNN_FRONTEND_VERSION headers (PyPI nvidia-cudnn-frontend) into $dest"
  if "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
       "nvidia-cudnn-frontend==$CUDNN_FRONTEND_VERSION" >/dev/null 2>&1 &&
     $sudo rm -rf "$dest.partial" && $sudo "$py" - "$tmp" "$dest.partial" <<'PY' && $sudo mv "$dest.partial" "$dest"
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("include/") and not name.endswith("/"):
            target = pathlib.Path(sys.argv[2]) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
  then
    :
  else
    echo "install-deps: warning: could not fetch the cuDNN frontend; CUDA builds leave out the cuDNN attention"
  fi
  rm -rf "$tmp"
}

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_python_refs
  install_cudnn_frontend
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_python_refs
install_cudnn_frontend
echo "install-deps: done"
