#!/usr/bin/env bash
# Fuzz one of the file parsers with libFuzzer for a given time.
#
#   fuzz/run.sh idx|npy|npz|checkpoint [SECONDS]   (default 600)
#
# Builds ResNetKit's sources together with fuzz/harness/NAME.swift into one binary with
# libFuzzer and AddressSanitizer, then fuzzes from the seed corpus in fuzz/corpus/NAME. New
# inputs go to fuzz/.work/NAME and crashing ones to fuzz/.work/crashes (both ignored by git);
# turn each crash into a test. Exits non-zero when libFuzzer finds a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:-}"
seconds="${2:-600}"
case "$name" in
    idx|npy|npz|checkpoint) ;;
    *)
        echo "usage: fuzz/run.sh idx|npy|npz|checkpoint [SECONDS]" >&2
        exit 2
        ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
    echo "error: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi

work="fuzz/.work"
binary="$work/fuzz-$name"
mkdir -p "$work/$name" "$work/crashes"

echo "building $binary" >&2
rm -f "$binary"
mapfile -t sources < <(find Sources/ResNetKit -name '*.swift' | sort)
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name ResNetKitFuzz \
    -I Sources/CZlib -lz "${sources[@]}" "fuzz/harness/$name.swift" -o "$binary" 2>&1 \
    | { grep -v "Cannot export local symbol" >&2 || true; }
[[ -x "$binary" ]] || { echo "error: building $binary failed" >&2; exit 1; }

echo "fuzzing $name for $seconds s" >&2
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -artifact_prefix="$work/crashes/$name-" "$work/$name" "fuzz/corpus/$name"
