#!/usr/bin/env bash
# Build compare.cpp against the bridge's Winograd kernels and libdnnl, then time both on the
# 3x3 stride-1 convolutions of ResNet-20 (28x28, batch 128), the tutorial's model (74x74,
# batch 32) and ResNet-18 (224x224 input, batch 32). The first argument, if any, is the number
# of runs of each pass (default 5). Example: OMP_NUM_THREADS=2 bench/winograd/run.sh 5
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$(dirname "$here")")"
binary="$(mktemp -d)/compare"
trap 'rm -rf "$(dirname "$binary")"' EXIT

compiler="${CXX:-clang++}"
"$compiler" -std=c++17 -O2 -I"$root/CxxBridge" -I"$root/CxxBridge/include" \
    "$here/compare.cpp" "$root/CxxBridge/Winograd.cpp" -ldnnl -ldl -o "$binary"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
echo "threads: $OMP_NUM_THREADS, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for shape in "128 16 16 28" "128 32 32 14" "128 64 64 7" "32 64 64 74" \
             "32 64 64 56" "32 128 128 28" "32 256 256 14" "32 512 512 7"; do
    # shellcheck disable=SC2086
    "$binary" $shape "${1:-5}"
done
