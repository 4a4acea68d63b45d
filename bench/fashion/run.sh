#!/usr/bin/env bash
# Run compare.py with PyTorch from the virtual environment that bench/peers/run.sh
# creates. Example: bench/fashion/run.sh --epochs 15 --json bench/results/fashion.json
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$here")/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "Creating $venv through bench/peers/run.sh" >&2
    "$(dirname "$here")/peers/run.sh" --help > /dev/null
fi
exec "$venv/bin/python" "$here/compare.py" "$@"
