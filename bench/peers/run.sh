#!/usr/bin/env bash
# Install the pinned peer frameworks into bench/.venv (once), then run peers.py
# with this script's arguments. Example:
#   bench/peers/run.sh train infer --input 224x224x3 --batch-size 32 --json peers.json
# See `bench/peers/run.sh --help` for every option.
set -euo pipefail

peers_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$peers_dir")/.venv"
requirements="$peers_dir/requirements.txt"
stamp="$venv/.requirements-installed"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "Creating the virtual environment $venv" >&2
    python3 -m venv "$venv"
fi

# Reinstall only when requirements.txt changed since the last successful install.
if [[ ! -f "$stamp" ]] || ! cmp -s "$requirements" "$stamp"; then
    echo "Installing the pinned frameworks from $requirements" >&2
    if ! "$venv/bin/pip" install --quiet -r "$requirements"; then
        echo "error: pip failed to install $requirements into $venv." >&2
        echo "torch==2.13.0+cpu comes from the find-links folder /opt/wheels of this machine image;" >&2
        echo "where that folder is missing, pin a torch version that pip offers (pip index versions torch)." >&2
        exit 1
    fi
    cp "$requirements" "$stamp"
fi

exec "$venv/bin/python" "$peers_dir/peers.py" "$@"
