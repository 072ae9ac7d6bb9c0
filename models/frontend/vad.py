"""Voice activity per track: Silero VAD (its ONNX model, shipped in models/weights/silero-vad/) on onnxruntime.

Silero answers one speech probability per 512-sample (32 ms) window at 16 kHz and carries a recurrent state, plus
the last 64 samples of the previous window as context. One onnxruntime session serves every stream in the process.

Each window's answer is its probability and the LSTM output it came from (STATE_DIM values): the motion model's
encoder may read that output too. Silero learned it from a great deal of real speech in many voices, languages and
rooms, where the corpus has synthetic voices, so it carries what a voice is doing in a way that holds on real
voices (docs/experiments.md "Hearing real voices through the VAD").
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from backchannel.models.audio import SAMPLE_RATE

WINDOW = 512  # samples per probability at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees again
WINDOW_S = WINDOW / SAMPLE_RATE
STATE_DIM = 128  # the LSTM's output (the first half of Silero's recurrent state)

_session = None
_session_lock = threading.Lock()


MODEL = Path(__file__).parent.parent / "weights" / "silero-vad" / "silero_vad.onnx"  # README.md beside it


def _onnx_session():
    global _session
    with _session_lock:
        if _session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # tiny model: threads cost more than they give
            opts.inter_op_num_threads = 1
            _session = ort.InferenceSession(str(MODEL), opts, providers=["CPUExecutionProvider"])
        return _session


class VadStream:
    """One row per completed 32 ms window of one track (window i covers samples [i * WINDOW, (i + 1) * WINDOW)):
    the speech probability, then the LSTM's output (STATE_DIM)."""

    def __init__(self) -> None:
        self.session = _onnx_session()
        self.pending = np.zeros(0, np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.state = np.zeros((2, 1, STATE_DIM), np.float32)
        self.windows = 0  # windows answered so far

    def process(self, x: np.ndarray) -> np.ndarray:
        return process_many([self], [x])[0]


def process_many(streams: list[VadStream], chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Several streams' new audio at once -> each stream's new rows (n, 1 + STATE_DIM). Each round, every stream
    with a whole window pending joins one batched call (the model treats each batch row alone: the same rows as one
    call per stream)."""
    sr = np.array(SAMPLE_RATE, np.int64)
    for stream, x in zip(streams, chunks):
        stream.pending = np.concatenate([stream.pending, np.asarray(x, np.float32).reshape(-1)])
    rows: list[list[np.ndarray]] = [[] for _ in streams]
    while ready := [i for i, s in enumerate(streams) if len(s.pending) >= WINDOW]:
        group = [streams[i] for i in ready]
        windows = [s.pending[:WINDOW] for s in group]
        out, state = group[0].session.run(None, {
            "input": np.stack([np.concatenate([s.context, w]) for s, w in zip(group, windows)]),
            "state": np.concatenate([s.state for s in group], axis=1), "sr": sr})
        answers = np.concatenate([out[:, :1], state[0]], axis=1)  # (streams, 1 + STATE_DIM)
        for k, (i, s, window) in enumerate(zip(ready, group, windows)):
            rows[i].append(answers[k])
            s.state = state[:, k:k + 1]
            s.context = window[-CONTEXT:]
            s.pending = s.pending[WINDOW:]
            s.windows += 1
    return [np.array(r, np.float32).reshape(-1, 1 + STATE_DIM) for r in rows]
