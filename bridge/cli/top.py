"""`backchannel top`: a running worker at a glance, refreshed live: its sessions (generator, fps, latency, errors),
its tier and the machine's load, and recent tier changes. It asks the worker's control socket, as any client may."""
from __future__ import annotations

import time

from backchannel.bridge.cli.send import add_key_arguments, keys_from

MAX_ROWS = 40  # sessions shown (the first by name); the rest are counted
# longer than a scale-out ingress waits for a replica (3 s) before it answers no_replica: top shows that answer
ANSWER_TIMEOUT_S = 6.0


def register(commands) -> None:
    p = commands.add_parser("top", help="watch a running worker: sessions, fps, latency, tier, load")
    p.add_argument("--control", default="tcp://127.0.0.1:5557", metavar="ENDPOINT", help="the worker's control socket")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one table and exit (for scripts and logs)")
    add_key_arguments(p)
    p.set_defaults(func=top_command)


def snapshot(control) -> tuple[dict, list[dict]]:
    """The worker's stats and its sessions' (the first MAX_ROWS by name); a session whose stats could not be had
    (an ingress's replica that did not answer) is {"session": name, "unanswered": its error}."""
    worker = control.call("stats")
    sessions = []
    for name in worker["sessions"][:MAX_ROWS]:
        reply = control.request("stats", session=name)
        if reply.get("ok"):
            sessions.append(reply)
        elif reply.get("error") != "unknown_session":  # (that one closed in between)
            sessions.append({"session": name, "unanswered": f"{reply.get('error')}: {reply.get('message')}"})
    return worker, sessions


def render(worker: dict, sessions: list[dict], before: dict | None, seconds: float):
    """A rich Table of one snapshot; fps and CPU from the counts of the one before (`before`: session -> frames,
    and "_cpu_s": the worker's CPU seconds then)."""
    from collections import Counter

    from rich.table import Table

    governor = worker.get("governor") or {}
    cpu = (100 * (worker["cpu_s"] - before["_cpu_s"]) / seconds) if before and seconds > 0 else None
    title = (f"backchannel worker: {len(worker['sessions'])} sessions, {worker['frames']} frames, "
             f"up {worker['uptime_s']:.0f} s" + (f", CPU {cpu:.0f}%" if cpu is not None else "")
             + (f", tier {governor['tier']}" + (" (pinned)" if governor.get("pinned") else "") if governor else ""))
    gpu = governor.get("telemetry") or {}
    caption = " ".join(f"{k} {v}" for k, v in gpu.items()) or ""
    changes = governor.get("changes") or []
    if changes:
        caption += ("\n" if caption else "") + "; ".join(
            f"{c.get('from')} -> {c.get('to')} ({c.get('reason')})" for c in changes[-3:])
    errors = worker.get("errors") or {}
    if errors:
        caption += ("\n" if caption else "") + "worker errors: " + ", ".join(f"{k} {v}" for k, v in errors.items())
    replicas = worker.get("replicas")  # a scale-out ingress (docs/scale.md): where each session runs
    placement = worker.get("placement") or {}
    if replicas is not None:
        placed = Counter(placement.values())
        title = title.replace("backchannel worker", f"backchannel ingress, {len(replicas)} replicas", 1)
        caption += ("\n" if caption else "") + "\n".join(
            f"replica {r['id']}: {placed[r['id']]} sessions, {r['frames']} frames, tier {r['tier'] or '-'}, "
            f"load {r['load']:.2f}" + (f", pressure: {'; '.join(r['pressure'])}" if r["pressure"] else "")
            for r in replicas)
    table = Table(title=title, caption=caption or None)
    columns = ("session", *(("replica",) if replicas is not None else ()), "generator", "fps", "p50 ms", "p95 ms",
               "audio s", "concealed s", "errors")
    for column in columns:
        table.add_column(column, justify="left" if column in ("session", "replica", "generator", "errors") else
                         "right")
    for s in sessions:
        if "unanswered" in s:
            table.add_row(s["session"], *((placement.get(s["session"], "-"),) if replicas is not None else ()),
                          *["-"] * (len(columns) - 2 - (replicas is not None)), s["unanswered"])
            continue
        was = (before or {}).get(s["session"])
        fps = (s["frames"] - was) / seconds if was is not None and seconds > 0 else None
        latency = s.get("latency_ms") or {}
        concealed = sum(t.get("concealed_s", 0) for t in s.get("tracks", {}).values())
        table.add_row(s["session"], *((placement.get(s["session"], "-"),) if replicas is not None else ()),
                      s["generator"], "-" if fps is None else f"{fps:.1f}",
                      str(latency.get("p50", "-")), str(latency.get("p95", "-")), f"{s['audio_s']:.1f}",
                      f"{concealed:.2f}", ", ".join(f"{k} {v}" for k, v in s.get("errors", {}).items()))
    hidden = len(worker["sessions"]) - len(sessions)
    if hidden > 0:
        table.add_row(f"... {hidden} more", *[""] * (len(columns) - 1))
    return table


def counts(worker: dict, sessions: list[dict]) -> dict:
    return {**{s["session"]: s["frames"] for s in sessions if "frames" in s}, "_cpu_s": worker["cpu_s"]}


def top_command(args) -> int:
    from rich.console import Console
    from rich.live import Live

    from backchannel.bridge.client import ControlClient

    if not args.interval > 0:
        raise ValueError(f"--interval must be a number > 0, got {args.interval}")
    console = Console()
    with ControlClient(args.control, timeout_s=max(ANSWER_TIMEOUT_S, args.interval), keys=keys_from(args)) as control:
        worker, sessions = snapshot(control)
        frames, taken = counts(worker, sessions), time.time()
        if args.once:  # two snapshots an interval apart, so fps can be shown
            time.sleep(args.interval)
            worker, sessions = snapshot(control)
            console.print(render(worker, sessions, frames, time.time() - taken))
            return 0
        with Live(render(worker, sessions, None, 0), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                try:
                    worker, sessions = snapshot(control)
                except RuntimeError as e:  # a worker busy or restarting: say so and ask again
                    live.update(f"{e}; asking again")
                    continue
                now = time.time()
                live.update(render(worker, sessions, frames, now - taken))
                frames, taken = counts(worker, sessions), now
