#!/usr/bin/env bash
# Installs what is missing, builds `resnet` in release mode and runs the tutorial's job:
# the tutorial's model on 1000 random 224x224x3 images, 10 classes, 10 epochs of batch 32,
# validated on 250 more. Extra arguments go to `resnet train` (see `resnet train --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
# Build output goes to standard error, so that standard output holds only the training log.
swift build -c release --product resnet >&2
exec .build/release/resnet train "$@"
