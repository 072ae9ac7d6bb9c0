#!/usr/bin/env bash
# Sets up a fresh machine: the Debian packages Backchannel uses (when this user may install them), then .venv
# with the CPU build of torch and the project in editable mode. Safe to re-run.
# `--demo`: only what `make demo` needs (the core with its preview plots and video), no system packages, no torch.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --demo ]; then
    PYTHON=${PYTHON:-python3}
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[render,bake]"
    touch .venv/.demo-ready
    echo "setup: ready for the demo (.venv/bin/backchannel); \`make test\` sets up the rest"
    exit 0
fi

# espeak-ng/festival (+ its kal voice, only "recommended" by festival)/flite: corpus voices;
# libportaudio2: --mic capture; libasound2-plugins: the ALSA null device
# tests open; libzmq3-dev/cppzmq-dev/g++: the C++ peer that checks our ZeroMQ stream;
# cmake/libmsgpack-cxx-dev (header-only): the Unreal plugin's C++ core, built and tested outside the engine;
# mono-mcs/mono-runtime: the Unreal plugin's Build.cs rules checked as C#, and the Unity package's C# core compiled
# and run against a live worker; chromium + chromium-driver: the viewer page's test and three.js (Selenium drives
# Debian's chromedriver); blender + python3-numpy (its glTF importer imports numpy), node + npm: the tools the bake
# tests import our assets with (tests/test_bake_gltf.py; node packages: tests/js, below).
SYSTEM_PACKAGES="espeak-ng libespeak-ng1 festival festvox-kallpc16k flite libportaudio2 libasound2-plugins libzmq3-dev cppzmq-dev g++ pkg-config cmake libmsgpack-cxx-dev mono-mcs mono-runtime"
SYSTEM_PACKAGES="$SYSTEM_PACKAGES blender python3-numpy chromium chromium-driver"
missing=""
for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# Node may come from elsewhere than Debian (NodeSource's nodejs carries npm and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
    if [ "$sudo" = none ]; then
        echo "setup: cannot install system packages without root; missing:$missing" >&2
        echo "setup: the demo still runs; corpus voices, audio devices and the C++ peer test need them" >&2
    else
        echo "setup: installing system packages:$missing"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
    fi
fi

# CI also installs mbrola with one database (non-free; scripts/install-mbrola.sh) so the MBROLA voice tests run
# there (where it fails, tests/conftest.py fails their skips); elsewhere MBROLA stays opt-in and those tests say they
# were skipped and why.
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then
    bash scripts/install-mbrola.sh us1 || echo "setup: mbrola not installed; its voice tests will be skipped" >&2
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build first: with it installed, the project's unpinned torch requirement pulls nothing more.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
# Face landmarks for portraits (docs/render.md): mediapipe 0.10.14's face mesh, whose models ship in the wheel.
# Installed without its declared dependencies: their protobuf<5 pin would downgrade onnx (which needs >= 6), and
# jax, jaxlib and opencv-contrib are not used by the face mesh; the `render` extra holds what it does import.
# Optional: where no wheel exists, portraits need a landmark file instead.
if ! log=$(.venv/bin/python -m pip install -q --no-deps "mediapipe==0.10.14" 2>&1); then
    echo "setup: mediapipe 0.10.14 is not available here; portraits need landmark files (docs/render.md)" >&2
    echo "$log" | tail -n 3 >&2
fi
# The pylipsync peer `eval` scores (the `peers` extra brings what it imports, librosa): its metadata pins
# numpy < 2.4, which its code does not need and this project's numpy (2.4) contradicts.
.venv/bin/python -m pip install -q --no-deps "pylipsync==0.2.1"
# The bake tests' independent readers from npm, at the versions tests/js/package-lock.json pins.
if command -v npm >/dev/null 2>&1; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "setup: no npm; the glTF validator and three.js tests will be skipped" >&2
fi
touch .venv/.setup-done .venv/.demo-ready
echo "setup: ready (.venv/bin/backchannel)"
