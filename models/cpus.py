"""How many processes a job should start: the CPUs this process may use, not how many the machine has."""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may run on (its affinity: taskset, cpusets), capped by its cgroup's CPU quota (a
    container's --cpus, a CI runner's limit); at least 1. os.cpu_count() counts the machine's CPUs instead, so a
    container on a big host would start dozens of processes for two CPUs' worth of time."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota(cgroup)
    return max(1, min(n, math.ceil(quota)) if quota else n)


def cpu_quota(cgroup: Path = CGROUP) -> float | None:
    """CPUs' worth of time the cgroup may use per period (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us over
    cpu.cfs_period_us); None when unlimited or unknown."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()  # "max 100000" or "200000 100000"
    except (OSError, ValueError):
        try:
            quota, period = ((cgroup / "cpu" / f"cpu.cfs_{k}_us").read_text().strip() for k in ("quota", "period"))
        except OSError:
            return None
    try:
        cpus = int(quota) / int(period)  # "max" (v2) is a ValueError, -1 (v1) negative: no limit
    except (ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None
