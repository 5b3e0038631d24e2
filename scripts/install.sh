#!/usr/bin/env bash
# Create the virtual environment and install lightseg with the given extras (default: all).
# Where pip can find a local CPU wheel of torch 2.13.0 (these build machines keep one in pip's
# find-links), install that first so the `torch>=2.4` requirement does not pull a CUDA build.
# Elsewhere this is a normal install.
set -euo pipefail
venv=${1:-.venv}
extras=${2:-all}
python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip setuptools wheel
probe=$(mktemp -d)
if $pip download -q --no-index --no-deps --only-binary=:all: -d "$probe" "torch==2.13.0" >/dev/null 2>&1; then
  echo "install: using the local CPU wheel torch==2.13.0"
  $pip install -q "torch==2.13.0"
fi
rm -rf "$probe"
$pip install -q -e ".[$extras]" --config-settings editable_mode=strict
