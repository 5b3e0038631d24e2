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

# System pieces for the demo tests (best effort: each test skips with its reason without them).
# junit4 runs the Android demo's plain-Java tests; chromium + onnxruntime-web run the browser test.
if [[ "$extras" == *all* || "$extras" == *web* ]]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! dpkg -s junit4 chromium >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4 chromium) \
        >/dev/null 2>&1 || echo "install: apt-get could not install junit4/chromium (tests will skip)"
    fi
  fi
  if command -v npm >/dev/null && [ ! -d "$venv/web/node_modules/onnxruntime-web" ]; then
    ver=$("$venv/bin/python" -I -c "from lightseg.benchmarks.webdemo import ORT_WEB_VERSION as v; print(v)")
    npm install -s --prefix "$venv/web" --no-fund --no-audit "onnxruntime-web@$ver" \
      || echo "install: npm could not install onnxruntime-web (browser test will skip)"
  fi
  if command -v apt-get >/dev/null && [ ! -f "$HOME/.cache/lightseg/android-23/android.jar" ]; then
    bash android_demo/fetch_android_jar.sh >/dev/null 2>&1 \
      || echo "install: android.jar (API 23) not fetched (Android compile check will skip)"
  fi
fi

# Python 3.10 (JetPack 6's) smoke venv, light (no torch, no runtimes): tests/architecture/
# test_py310.py imports every module and runs the core units in it. Best effort, where a 3.10
# interpreter exists (this build image keeps one under pyenv); the test skips without it.
py310=""
if python3.10 -c "" 2>/dev/null; then py310=$(command -v python3.10); fi
if [ -z "$py310" ] && command -v pyenv >/dev/null; then
  py310=$(ls -d "$(pyenv root)"/versions/3.10*/bin/python3.10 2>/dev/null | tail -1 || true)
fi
if [ -n "$py310" ] && [ ! -x .venv310/bin/python ]; then
  ("$py310" -m venv .venv310 \
    && .venv310/bin/python -m pip install -q numpy scipy tomli pillow rich typer click \
    && .venv310/bin/python -m pip install -q --no-deps -e . --config-settings editable_mode=strict) \
    >/dev/null 2>&1 || { echo "install: the Python 3.10 smoke venv failed (its test will skip)"; rm -rf .venv310; }
fi

