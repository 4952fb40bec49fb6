#!/usr/bin/env bash
# Installs Loom's build dependencies from Debian packages, idempotently:
# apt-get update runs once, and only when something is missing.
set -euo pipefail
PACKAGES=(cmake ninja-build g++ libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
          libfmt-dev libgtest-dev libopenmpi-dev openmpi-bin
          libopenblas-dev)  # libopenblas-dev: bench/ only (attention sgemm baseline)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if [ ! -d /usr/local/cuda/include ]; then
  echo "install-deps: warning: no CUDA toolkit at /usr/local/cuda; the CUDA backend will be disabled" >&2
fi
