#!/usr/bin/env bash
# Installs what is missing, then runs the test suite and builds and runs the example package,
# which uses ResNetKit without C++ interoperability.
#
# The tests build in release mode with testing enabled: they train small networks on the
# pure-Swift reference backend, which is about fifty times slower unoptimized.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
swift build -c release --build-tests -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build

echo "building and running Examples/ReferenceTraining"
swift build -c release --package-path Examples/ReferenceTraining
Examples/ReferenceTraining/.build/release/ReferenceTraining
