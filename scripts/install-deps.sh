#!/usr/bin/env bash
# Installs Loom's build dependencies from Debian packages, idempotently:
# apt-get update runs once, and only when something is missing.
set -euo pipefail
PACKAGES=(cmake ninja-build g++ libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
          libfmt-dev libgtest-dev libopenmpi-dev openmpi-bin)
# Optional: bench/ only (the attention sgemm baseline); the build goes on
# without it and the bench says why.
OPTIONAL=(libopenblas-dev)
missing=() optional=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || optional+=("$p"); done
if [ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq || [ ${#missing[@]} -eq 0 ]
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
  if [ ${#optional[@]} -gt 0 ]; then
    echo "install-deps: installing optional ${optional[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${optional[@]}" ||
      echo "install-deps: warning: could not install ${optional[*]} (only bench/ uses it)" >&2
  fi
fi
if [ ! -d /usr/local/cuda/include ]; then
  echo "install-deps: warning: no CUDA toolkit at /usr/local/cuda; the CUDA backend will be disabled" >&2
fi
# Analysis dependency (not a build one): nvdisasm from PyPI's
# nvidia-cuda-nvdisasm, in a venv, for `loom profile` and the SASS tests.
# They find it through $LOOM_NVDISASM, PATH, or this venv
# ($LOOM_ANALYSIS_VENV, default ~/.local/share/loom/analysis-venv) and skip,
# saying why, without it.
ANALYSIS_VENV=${LOOM_ANALYSIS_VENV:-$HOME/.local/share/loom/analysis-venv}
if ! ls "$ANALYSIS_VENV"/lib/python3*/site-packages/nvidia/cu*/bin/nvdisasm >/dev/null 2>&1; then
  echo "install-deps: installing nvdisasm (nvidia-cuda-nvdisasm) into $ANALYSIS_VENV"
  if { python3 -m venv "$ANALYSIS_VENV" 2>/dev/null ||
       { ${SUDO:-} apt-get install -y -qq python3-venv && python3 -m venv "$ANALYSIS_VENV"; }; } &&
     "$ANALYSIS_VENV/bin/pip" install -q nvidia-cuda-nvdisasm; then
    :
  else
    echo "install-deps: warning: could not install nvdisasm; loom profile and the SASS tests will skip" >&2
  fi
fi
