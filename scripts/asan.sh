#!/usr/bin/env bash
# Runs the test suite with AddressSanitizer on the Swift code and the C++ bridge.
#
# The build goes to .build-asan, apart from the normal one, in release mode with testing
# enabled as scripts/test.sh builds it. oneDNN itself is not instrumented. Any report ends the
# run with a non-zero status. Extra arguments go to 'swift test', such as --filter NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
flags=(-c release --scratch-path .build-asan -Xswiftc -enable-testing
    -Xswiftc -sanitize=address -Xcc -fsanitize=address -Xcxx -fsanitize=address)
swift build "${flags[@]}" --build-tests 2>&1 | { grep -v "Cannot export local symbol" || true; }
# detect_leaks=0: oneDNN and the OpenMP runtime keep caches until exit, which LeakSanitizer
# would report as leaks of this project.
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" swift test "${flags[@]}" --skip-build "$@"
