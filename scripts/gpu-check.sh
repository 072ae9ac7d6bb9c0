#!/usr/bin/env bash
# The CUDA checks, as one short run for a machine with an NVIDIA GPU (about 8 minutes at most: every step has a
# timeout; nothing here runs in CI). It writes everything to $OUT (default out/gpu-check/; 8 files, each bench's
# JSON rewritten after every level, so a step cut off by its timeout keeps what it measured) and prints a summary:
#   1. correctness: the model's frames on CUDA (fp32, bf16, fp16, compiled with CUDA graphs) against the CPU's;
#   2. capacity: `bench capacity --device cuda` at 1, 32, 256 and 1024 sessions (fp32, bf16, bf16 + CUDA graphs),
#      and a worker serving on the GPU streamed over sockets at 1, 16 and 64 sessions;
#   3. the governor's NVML readings for the GPU in use, idle and while the bench runs (skipped, saying so, where
#      nvidia-ml-py is missing).
# Needs: python3 with a CUDA build of torch, and this project's dependencies (pyproject.toml: numpy, scipy, pyzmq,
# msgpack, soundfile, python-osc, onnxruntime, sounddevice, tqdm, rich, websockets; nvidia-ml-py for step 3;
# setuptools>=77 for the editable install). The lent H100/H200 image (python 3.12) has all but pyzmq, soundfile,
# python-osc, sounddevice and websockets, and cannot download: carry wheels in .gpu-wheels/, made elsewhere with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .gpu-wheels pyzmq soundfile python-osc sounddevice websockets nvidia-ml-py msgpack scipy \
#       onnxruntime tqdm rich markdown-it-py mdurl pygments cffi pycparser 'setuptools>=77'
# (a wheel already installed there is left as it is). The project itself goes in with --no-deps, so a missing
# dependency shows as a failed import below, not as pip reaching for the network.
# Usage: bash scripts/gpu-check.sh [SESSIONS, default 1,32,256,1024]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
SESSIONS=${1:-1,32,256,1024}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && .venv/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    && PY=.venv/bin/python

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/correctness.txt"
if ! "$PY" -c "import backchannel" 2>/dev/null; then
    if [ -d .gpu-wheels ]; then  # only what is missing: the image's own torch, numpy... stay
        for wheel in .gpu-wheels/*.whl; do
            name=$(basename "$wheel" | cut -d- -f1 | tr _ -)
            "$PY" -m pip show -q "$name" >/dev/null 2>&1 || \
                timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile "$wheel"
        done
    fi
    timeout 120 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
        || { echo "the project did not install (setuptools>=77 needed: carry its wheel)"; exit 1; }
fi
"$PY" -c "import backchannel.bridge.worker, torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, torch.cuda.get_device_name(0))" \
    || { echo "cannot run: a dependency is missing (see above) or torch sees no GPU"; exit 1; }
NVML=1
"$PY" -c "import pynvml" 2>/dev/null || { NVML=0; echo "nvidia-ml-py is not installed: step 3 (NVML) is skipped"; }

echo "== 1. CUDA frames against the CPU's"
timeout 120 "$PY" - <<'EOF' 2>&1 | tee -a "$OUT/correctness.txt"
import time
import numpy as np
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.generator import generate, make_generator

a, b = synthetic_dialogue(10.0, seed=5)
cpu = generate(make_generator("model[backend=torch]"), a, b, seed=3, chunk_s=0.02)
print(f"{'settings':48s} max |diff|  mean |diff|  states equal  s", flush=True)
for spec in ("model[device=cuda]", "model[device=cuda;precision=bf16]", "model[device=cuda;precision=fp16]",
             "model[device=cuda;precision=bf16;compile=reduce-overhead]"):
    t = time.perf_counter()
    got = generate(make_generator(spec), a, b, seed=3, chunk_s=0.02)
    d = np.abs(got.motion - cpu.motion)
    print(f"{spec:48s} {d.max():10.6f}  {d.mean():11.7f}  {(got.state == cpu.state).mean():12.3f}  "
          f"{time.perf_counter() - t:.1f}", flush=True)
EOF

echo "== 2. capacity in process on the GPU (NVML read in the background)"
STOP=$(mktemp -u)  # made when the benches are done: the reader stops
[ "$NVML" = 1 ] && timeout 400 "$PY" - "$OUT/nvml.jsonl" "$STOP" <<'EOF' &
import json, os, sys, time
from backchannel.bridge.governor import Telemetry, nvml_id
t = Telemetry(nvml_id("cuda:0"))  # the GPU torch calls cuda:0, by its UUID
with open(sys.argv[1], "w") as f:
    while not os.path.exists(sys.argv[2]):  # four readings a second (400 s at most: the timeout)
        f.write(json.dumps({"t": round(time.time(), 2), **t.sample()}) + "\n")
        f.flush()
        time.sleep(0.25)
EOF
: >"$OUT/capacity.txt"
for run in "fp32:" "bf16:--precision bf16" "bf16-graphs:--precision bf16 --compile reduce-overhead"; do
    name=${run%%:*}
    # shellcheck disable=SC2086  # the flags are words
    timeout 75 "$PY" -m backchannel.bridge.cli bench capacity --device cuda ${run#*:} --sessions "$SESSIONS" \
        --seconds 4 --json "$OUT/capacity-$name.json" 2>&1 | tee -a "$OUT/capacity.txt" || true
done
# the realistic figure: a worker serving on the GPU (every tier, the governor on), streamed over sockets
timeout 100 "$PY" -m backchannel.bridge.cli bench capacity --sockets --device cuda --precision bf16 \
    --sessions 1,16,64 --seconds 6 --json "$OUT/capacity-sockets.json" 2>&1 | tee -a "$OUT/capacity.txt" || true
touch "$STOP"; wait; rm -f "$STOP"

echo "== 3. NVML, as the governor reads it (first and busiest readings)"
[ "$NVML" = 1 ] && timeout 30 "$PY" - "$OUT/nvml.jsonl" <<'EOF' | tee "$OUT/nvml-summary.txt"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{len(rows)} readings; first: {rows[0] if rows else None}")
if rows and "utilization_pct" in rows[0]:
    busiest = max(rows, key=lambda r: r.get("utilization_pct", 0))
    print(f"busiest: {busiest}")
    from backchannel.bridge.governor import DEFAULT_SETTINGS, gpu_distress
    print("distress at the busiest, ticks near their budget:", gpu_distress(busiest, DEFAULT_SETTINGS) or "none")
    print("and with deadlines met:", gpu_distress(busiest, DEFAULT_SETTINGS, near_deadline=False) or "none")
EOF
echo "wrote $OUT"
