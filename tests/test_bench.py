"""The latency and capacity measurements run end to end (their numbers go to docs/benchmarks.md, not asserts)."""
import math

from backchannel.bridge.latency import measure_capacity, measure_latency, synthetic_dialogue

from .helpers import WORKER_COMMAND


def test_latency_measurement_reports_both_latencies():
    a, b = synthetic_dialogue(2.0)
    r = measure_latency(a, b[:24000], worker_command=WORKER_COMMAND)  # a shorter partner track is padded
    assert r["generator"] == "energy" and r["lookahead_ms"] > 0
    assert r["frames"] == 60
    for key in ("end_to_end_ms", "processing_ms", "server_end_to_end_ms", "server_processing_ms"):
        p = r[key]
        assert all(math.isfinite(p[q]) for q in ("p50", "p95", "p99", "max")), key
        assert 0 <= p["p50"] <= p["p95"] <= p["p99"] <= p["max"], key
    # processing starts counting once the look-ahead audio is in, so it is the smaller of the two
    assert r["processing_ms"]["p50"] < r["end_to_end_ms"]["p50"]


def test_capacity_measurement_covers_each_level():
    a, b = synthetic_dialogue(2.0)
    seen = []
    rows = measure_capacity(a, b, [1, 3], worker_command=WORKER_COMMAND, progress=seen.append)
    assert [r["sessions"] for r in rows] == [1, 3] and seen == rows
    for r in rows:
        assert 0 < r["fps_min"] <= r["fps_mean"] + 1e-9 < 40  # (a mean of equal rates may round below them)
        assert isinstance(r["holds_30fps"], bool) and math.isfinite(r["end_to_end_ms"]["p95"])


def test_length_reports_cost_per_minute_and_memory_growth(capsys):
    from backchannel.bridge.cli import main

    assert main(["bench", "length", "--minutes", "1.02"]) == 0  # a minute and 36 frames
    out = capsys.readouterr().out.splitlines()
    rows = [line.split("|") for line in out if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2] and [int(r[2]) for r in rows] == [1800, 36]
    assert all(float(r[1]) > 0 for r in rows)
    assert out[-1].startswith("RSS grew ") and "from the end of minute 1 to the end of minute 2" in out[-1]
