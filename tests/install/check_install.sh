#!/usr/bin/env bash
# Installs Loom into a fresh prefix and builds examples/softmax against the
# installed package only (not the build tree), then runs it.
set -euo pipefail
build_dir=$1 source_dir=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix/install" > "$prefix/install.log"
test -x "$prefix/install/bin/loom"
test -f "$prefix/install/include/loom/dsl/Kernel.h"
test -f "$prefix/install/include/loom/Dialect/Loom/IR/LoomOps.h.inc"
cmake -S "$source_dir/examples/softmax" -B "$prefix/example" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DLoom_DIR="$prefix/install/lib/cmake/Loom" > "$prefix/configure.log"
cmake --build "$prefix/example" > "$prefix/build.log"
"$prefix/example/softmax_example"
"$prefix/install/bin/loom" version
# The installed tool runs the emulated device from the installed headers.
LOOM_CACHE_DIR="$prefix/cache" "$prefix/install/bin/loom" demo --kernels --backend emu
