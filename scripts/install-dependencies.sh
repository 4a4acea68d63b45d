#!/usr/bin/env bash
# Installs the Debian packages the build needs when they are missing: oneDNN's headers and
# library (libdnnl-dev), zlib's (zlib1g-dev), and MPICH (mpich), whose mpiexec and library
# distributed training and its tests use. Uses sudo when not run as root.
set -euo pipefail

missing=()
for package in libdnnl-dev zlib1g-dev mpich; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

run_as_root=()
if [ "$(id -u)" -ne 0 ]; then
    run_as_root=(sudo)
fi

echo "installing ${missing[*]}"
"${run_as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run_as_root[@]}" apt-get install -y -qq "${missing[@]}"
