"""The Unreal plugin's engine-independent C++ core (engine_plugins/unreal/core) configured and built once per test
session, whichever test module asks first (a build takes a while on two cores; every module shares it)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CORE = Path(__file__).parents[1] / "engine_plugins" / "unreal" / "core"
_build: dict = {}  # "dir" once built, "error" once failed: one attempt per session


def missing_toolchain() -> str | None:
    """Why the core cannot be built here, or None. scripts/setup.sh installs everything named."""
    for tool in ("cmake", "g++", "pkg-config"):
        if not shutil.which(tool):
            return f"{tool} is missing (scripts/setup.sh installs it)"
    if subprocess.run(["pkg-config", "--exists", "libzmq"]).returncode != 0:
        return "libzmq's development files are missing (libzmq3-dev; scripts/setup.sh installs it)"
    for header, package in (("zmq.hpp", "cppzmq-dev"), ("msgpack.hpp", "libmsgpack-cxx-dev")):
        probe = subprocess.run(["g++", "-std=c++17", "-E", "-x", "c++", "-"], input=f"#include <{header}>\n",
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return f"{header} is missing ({package}; scripts/setup.sh installs it)"
    return None


def core_build(tmp_path_factory) -> Path:
    """The build directory: libbackchannel_core.a, backchannel-stream, backchannel-subscribe, core_tests, ..."""
    if "dir" in _build:
        return _build["dir"]
    if "error" in _build:
        pytest.fail(_build["error"])
    reason = missing_toolchain()
    if reason:
        pytest.skip(reason)
    build = tmp_path_factory.getbasetemp() / "unreal-core-build"
    for step in (["cmake", "-S", str(CORE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                  "-DBACKCHANNEL_WERROR=ON"],
                 ["cmake", "--build", str(build), "-j2"]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            _build["error"] = f"{' '.join(step)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            pytest.fail(_build["error"])
    _build["dir"] = build
    return build
