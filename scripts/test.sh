#!/usr/bin/env bash
# Installs what is missing, then runs the test suite (debug build) and builds and runs the
# example package, which uses ResNetKit without C++ interoperability.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
swift build --build-tests
swift test --skip-build

echo "building and running Examples/ReferenceTraining"
swift build -c release --package-path Examples/ReferenceTraining
Examples/ReferenceTraining/.build/release/ReferenceTraining
