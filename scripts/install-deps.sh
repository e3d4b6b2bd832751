#!/usr/bin/env bash
# Installs every Debian package loom builds, tests or trains with (and
# OpenBLAS, the GEMM peer `loom-bench gemm` loads at run time; loom never links it).
# Idempotent: when everything is present it changes nothing and says so.
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

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_python_refs
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_python_refs
echo "install-deps: done"
