#!/usr/bin/env bash
# Fills the plugin's ThirdParty modules from this machine's packages (Debian: libzmq3-dev cppzmq-dev
# libmsgpack-cxx-dev; macOS: brew install zeromq cppzmq msgpack-cxx), for a first build on Linux or macOS.
# Windows: see Backchannel/Source/ThirdParty/README.md (vcpkg). The staged files are git-ignored.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
third="$here/Backchannel/Source/ThirdParty"
prefix="${PREFIX:-$( [ "$(uname)" = Darwin ] && brew --prefix || echo /usr )}"
inc="$prefix/include"
mkdir -p "$third/ZeroMQ/include" "$third/MsgpackCxx/include"
cp "$inc/zmq.h" "$inc/zmq.hpp" "$inc/zmq_addon.hpp" "$third/ZeroMQ/include/"
cp -R "$inc/msgpack.hpp" "$inc/msgpack" "$third/MsgpackCxx/include/"
if [ "$(uname)" = Darwin ]; then
    lib="$prefix/lib/libzmq.a"; dest="$third/ZeroMQ/lib/Mac"
else
    lib="$(ls /usr/lib/*-linux-gnu/libzmq.a 2>/dev/null | head -n 1)"; dest="$third/ZeroMQ/lib/Linux/x86_64-unknown-linux-gnu"
fi
if [ -n "$lib" ] && [ -f "$lib" ]; then
    mkdir -p "$dest" && cp "$lib" "$dest/libzmq.a"
    echo "staged headers and $lib -> $dest"
else
    echo "staged headers; no static libzmq found: build one (ThirdParty/README.md)" >&2
fi
