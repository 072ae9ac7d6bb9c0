"""The governor: moves the worker between quality tiers as the machine allows, quickly down and slowly up.

Every tick the worker calls `Governor.observe` with how long the tick took, its budget, how far behind its input it
is and its CPU share. Pressure is any of: the smoothed lag over `max_lag_s`, smoothed ticks over their budget, or
the GPU in distress (hot, throttled, out of memory; NVML, read every `telemetry_every_s`), or saturated while our
ticks near their budget (a worker that keeps its GPU busy and meets its deadlines is using it, not short of it).
Pressure held for `down_after_s` steps one tier down, and each further `down_after_s` another (lag the tier left
behind does not count against the next one while it drains). Clear headroom (no pressure and ticks under `headroom` x budget) held for `up_after_s`, at least `min_dwell_s` after the last change, steps
one tier up. The gap between the two thresholds is the hysteresis: a load near either one moves nothing, since a
tier is only left upwards when the one above should fit. Where it does not (tiers that are far apart in cost),
a tier left again within `up_after_s` of reaching it is tried half as often next time (up to `max_backoff` x
`up_after_s` apart), and as often as before once it holds.

Tiers and thresholds are data: `calibration/tiers.toml` (`load_tiers`). Pure logic, no sockets, no clock of its
own: `now` comes from the caller, so tests replay traces.
"""
from __future__ import annotations

import logging
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from backchannel.models.generator import GENERATORS, parse_spec

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

log = logging.getLogger("backchannel.governor")

TIERS_FILE = Path(__file__).parent.parent / "calibration" / "tiers.toml"  # package-dir: backchannel.calibration
DEFAULT_SETTINGS: dict[str, float] = {
    "max_lag_s": 0.1,
    "down_after_s": 0.5,
    "up_after_s": 10.0,
    "min_dwell_s": 5.0,
    "headroom": 0.5,
    "max_backoff": 16,
    "smoothing_s": 0.1,
    "telemetry_every_s": 0.25,
    "gpu_max_temperature_c": 85.0,
    "gpu_min_memory_free": 0.05,
    "gpu_max_utilization_pct": 98.0,
}
FRACTIONS = ("headroom", "gpu_min_memory_free")  # settings that are shares, below 1
# Smoothing: an exponential moving average over time (time constant smoothing_s), so the verdict does not depend
# on the tick rate; one observation weighs at most MAX_WEIGHT, so a single stall, however long, is at most half of
# the average and is forgotten within a few ticks, well before pressure has held for down_after_s.
MAX_WEIGHT = 0.5
HISTORY = 10  # changes kept for stats


@dataclass(frozen=True)
class Tier:
    name: str
    generator: str  # a generator spec: "model[sampler_steps=2]", "baseline"
    frame_size: int  # rendered portrait size in px
    frame_quality: int  # JPEG quality, 1..100


def load_tiers(path: str | Path | None = None) -> tuple[list[Tier], dict]:
    """The tier table (best first) and the governor's settings (DEFAULT_SETTINGS, updated by its [governor] table)
    from a TOML file; default the shipped calibration/tiers.toml. A malformed file: one ValueError naming the file
    and the key."""
    path = Path(path) if path is not None else TIERS_FILE
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not TOML: {e}") from None
    unknown = sorted(set(table) - {"tier", "governor"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; a tier table has [[tier]] and [governor]")
    rows = table.get("tier")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: no tiers; give at least one [[tier]] with name, generator, frame_size, "
                         "frame_quality")
    tiers = [_tier(row, f"{path} tier {i + 1}") for i, row in enumerate(rows)]
    names = [tier.name for tier in tiers]
    doubles = sorted({name for name in names if names.count(name) > 1})
    if doubles:
        raise ValueError(f"{path}: tier name(s) given twice: {', '.join(doubles)}")
    governor = table.get("governor", {})
    if not isinstance(governor, dict):
        raise ValueError(f"{path}: governor must be a table ([governor])")
    return tiers, checked_settings(governor, f"{path} [governor]")


def _tier(row, where: str) -> Tier:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a tier is a table ([[tier]])")
    where = f"{where} ({row['name']})" if isinstance(row.get("name"), str) else where
    fields = ("name", "generator", "frame_size", "frame_quality")
    unknown = sorted(set(row) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; a tier has {', '.join(fields)}")
    missing = [key for key in fields if key not in row]
    if missing:
        raise ValueError(f"{where}: {', '.join(missing)} missing")
    for key in ("name", "generator"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise ValueError(f"{where}: {key} must be text, not {row[key]!r}")
    try:
        generator, _ = parse_spec(row["generator"])
    except ValueError as e:
        raise ValueError(f"{where}: generator: {e}") from None
    if generator not in GENERATORS:
        raise ValueError(f"{where}: generator {row['generator']!r} is none of {', '.join(sorted(GENERATORS))}")
    for key, low, high in (("frame_size", 1, 8192), ("frame_quality", 1, 100)):
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{where}: {key} must be a whole number in {low}..{high}, not {value!r}")
    return Tier(row["name"], row["generator"], row["frame_size"], row["frame_quality"])


def checked_settings(settings: dict, where: str = "governor settings") -> dict:
    """DEFAULT_SETTINGS updated by `settings`: known keys, positive finite numbers, shares below 1."""
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_SETTINGS)}")
    for key, value in settings.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value <= 0 or (key in FRACTIONS and value >= 1):
            kind = "a share between 0 and 1" if key in FRACTIONS else "a positive number"
            raise ValueError(f"{where}: {key} must be {kind}, not {value!r}")
    if settings.get("max_backoff", 1) < 1:
        raise ValueError(f"{where}: max_backoff must be at least 1, not {settings['max_backoff']!r}")
    return {**DEFAULT_SETTINGS, **settings}


# --- GPU telemetry ----------------------------------------------------------------------------------------------------

# nvml.h's clock event (throttle) reasons; the names are what stats show
THROTTLE_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}
# Reasons that say nothing about distress: an idle GPU, clocks someone set on purpose (and the clocks of a
# multi-GPU sync boost group or of a display), and the software power cap, which a busy datacenter GPU (H100) hits
# routinely while it keeps up. Hardware slowdowns, power brakes and thermal limits are distress.
BENIGN_THROTTLE = {"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting", "sw_power_cap"}
NEAR_BUDGET = 0.8  # ticks this share of their budget or more: a saturated GPU is about to make us miss deadlines
NVML_TEMPERATURE_GPU, NVML_CLOCK_SM = 0, 1  # nvml.h
NVML_UNSUPPORTED = (3, 13)  # NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND: this figure, not NVML, is off
MB = 1 << 20


def throttle_names(mask: int) -> list[str]:
    return [THROTTLE_REASONS.get(1 << bit, hex(1 << bit)) for bit in range(mask.bit_length()) if mask >> bit & 1]


def nvml_id(device: str, properties=None) -> int | str | None:
    """How NVML finds the GPU that torch calls `device` ("cuda", "cuda:N"): its UUID ("GPU-..."), else its PCI bus
    id ("00000000:41:00.0"), else torch's index where CUDA_VISIBLE_DEVICES renumbers nothing. torch numbers only the
    visible GPUs, NVML all of them, so an index alone would read another GPU. None for a device that is no GPU, or
    one that cannot be told. `properties`: torch.cuda.get_device_properties of it (tests pass their own)."""
    if not device.startswith("cuda"):
        return None
    index = int(device.partition(":")[2] or 0)
    if properties is None:
        try:
            import torch

            properties = torch.cuda.get_device_properties(index if ":" in device else torch.cuda.current_device())
        except Exception as e:  # no CUDA after all: the engine says so; telemetry is off
            log.info("cannot tell which GPU %s is (%s: %s)", device, type(e).__name__, e)
            return None
    uuid = str(getattr(properties, "uuid", "") or "")
    if uuid:
        return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    bus = getattr(properties, "pci_bus_id", None)
    if bus is not None:
        return (f"{getattr(properties, 'pci_domain_id', 0):08x}:{bus:02x}:"
                f"{getattr(properties, 'pci_device_id', 0):02x}.0")
    return None if os.environ.get("CUDA_VISIBLE_DEVICES") else index


class Telemetry:
    """One GPU's figures through NVML (`pynvml`, from the optional nvidia-ml-py; imported only here, so machines
    without it or without a driver run as before). `sample()` is {} whenever NVML is unavailable: not installed,
    no driver or GPU at start, or any failure while sampling (then it stops for good). Either way it logs one line.
    `gpu`: NVML's index, a UUID or a PCI bus id (nvml_id). `nvml`: the NVML module to use (tests pass a fake);
    default `import pynvml`."""

    def __init__(self, gpu: int | str = 0, nvml=None, pid: int | None = None):
        self.index = gpu
        self.pid = os.getpid() if pid is None else pid  # other processes' memory: every pid but this one
        self.nvml = None  # None: off
        try:
            if nvml is None:
                import pynvml as nvml  # optional: pip install nvidia-ml-py
            nvml.nvmlInit()
            if isinstance(gpu, int):
                self.handle = nvml.nvmlDeviceGetHandleByIndex(gpu)
            elif gpu.startswith(("GPU-", "MIG-")):
                self.handle = nvml.nvmlDeviceGetHandleByUUID(gpu)
            else:
                self.handle = nvml.nvmlDeviceGetHandleByPciBusId(gpu)
        except ImportError:
            self._off("pynvml is not installed (pip install nvidia-ml-py)", logging.INFO)
        except Exception as e:  # pynvml.NVMLError: no driver, no such GPU...
            self._off(f"NVML did not start for GPU {gpu}: {type(e).__name__}: {e}", logging.INFO)
        else:
            self.nvml = nvml

    def _off(self, why: str, level: int) -> None:
        self.nvml = None
        log.log(level, "GPU telemetry off (%s); the governor runs on deadlines alone", why)

    def sample(self) -> dict:
        if self.nvml is None:
            return {}
        try:
            return self._read()
        except Exception as e:
            nvml, self.nvml = self.nvml, None
            try:
                nvml.nvmlShutdown()
            except Exception:
                pass  # it has failed already; the line below says how
            self._off(f"NVML failed on GPU {self.index}: {type(e).__name__}: {e}", logging.WARNING)
            return {}

    def close(self) -> None:
        if self.nvml is not None:
            self.nvml, nvml = None, self.nvml
            nvml.nvmlShutdown()

    def _read(self) -> dict:
        nv, handle = self.nvml, self.handle

        def read(function, *args):
            """A figure, or None where this GPU or driver lacks it (MIG, consumer boards): the rest still count."""
            try:
                return function(handle, *args)
            except Exception as e:
                if getattr(e, "value", None) in NVML_UNSUPPORTED:
                    return None
                raise

        utilization = read(nv.nvmlDeviceGetUtilizationRates)
        memory = read(nv.nvmlDeviceGetMemoryInfo)
        # the newer name first; older pynvml have only the throttle one
        reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            nv.nvmlDeviceGetCurrentClocksThrottleReasons
        mask = read(reasons)
        power_mw = read(nv.nvmlDeviceGetPowerUsage)
        # a process using both compute and graphics is listed twice. In a container NVML lists host pids, so this
        # process counts among the others there.
        others = {p.pid: p.usedGpuMemory or 0  # None: not available (Windows WDDM)
                  for lister in (nv.nvmlDeviceGetComputeRunningProcesses, nv.nvmlDeviceGetGraphicsRunningProcesses)
                  for p in read(lister) or () if p.pid != self.pid}
        sample = {
            "gpu": self.index,
            "utilization_pct": None if utilization is None else utilization.gpu,
            "memory_used_mb": None if memory is None else round(memory.used / MB),
            "memory_free_mb": None if memory is None else round(memory.free / MB),
            "memory_total_mb": None if memory is None else round(memory.total / MB),
            "temperature_c": read(nv.nvmlDeviceGetTemperature, NVML_TEMPERATURE_GPU),
            "sm_clock_mhz": read(nv.nvmlDeviceGetClockInfo, NVML_CLOCK_SM),
            "throttle": None if mask is None else throttle_names(mask),
            "power_w": None if power_mw is None else round(power_mw / 1000, 1),
            "others_memory_mb": round(sum(others.values()) / MB),
        }
        return {key: value for key, value in sample.items() if value is not None}


def gpu_distress(sample: dict, settings: dict, near_deadline: bool = True) -> list[str]:
    """What in a telemetry sample is distress, as reasons; [] for none (or no sample). A saturated GPU counts only
    `near_deadline` (our ticks near their budget, or lagging): busy alone is a GPU doing our work. (Other processes'
    memory cannot tell: in a container NVML lists host pids, this process among them.)"""
    reasons = []
    temperature = sample.get("temperature_c")
    if temperature is not None and temperature >= settings["gpu_max_temperature_c"]:
        reasons.append(f"gpu at {temperature} C")
    throttled = [name for name in sample.get("throttle", ()) if name not in BENIGN_THROTTLE]
    if throttled:
        reasons.append(f"gpu throttled ({', '.join(throttled)})")
    free, total = sample.get("memory_free_mb"), sample.get("memory_total_mb")
    if free is not None and total and free / total < settings["gpu_min_memory_free"]:
        reasons.append(f"gpu memory {free} of {total} MB free")
    utilization = sample.get("utilization_pct")
    if near_deadline and utilization is not None and utilization >= settings["gpu_max_utilization_pct"]:
        reasons.append(f"gpu {utilization}% busy")
    return reasons


# --- the governor -----------------------------------------------------------------------------------------------------

class Governor:
    """Chooses the worker's tier from what each tick reports (module doc). `pinned`: a tier name that stays."""

    def __init__(self, tiers: list[Tier], settings: dict | None = None, pinned: str | None = None,
                 telemetry: Telemetry | None = None):
        if not tiers:
            raise ValueError("a governor needs at least one tier")
        self.tiers = list(tiers)
        self.settings = checked_settings(settings or {})
        names = [tier.name for tier in self.tiers]
        if pinned is not None and pinned not in names:
            raise ValueError(f"unknown tier {pinned!r}; choose from {', '.join(names)}")
        self.index = names.index(pinned) if pinned is not None else 0  # unpinned: start at the best
        self.pinned = pinned is not None
        self.telemetry = telemetry  # None: deadlines alone
        self.gpu: dict = {}  # the latest telemetry sample
        self.next_sample = -math.inf
        self.last: float | None = None  # the previous observation's time
        self.tick_s = self.load = self.lag_s = self.cpu = None  # smoothed; load: tick_s / budget_s
        self.reasons: list[str] = []  # the pressure as of the latest observation
        self.lag_floor = 0.0  # lag left over from a tier stepped down from (_pressure)
        self.pressure_since: float | None = None
        self.clear_since: float | None = None  # since when there is clear headroom
        self.changed_at = -math.inf  # set at the first observation: the start counts as a change for min_dwell_s
        self.backoff = [1] * len(self.tiers)  # per tier: up_after_s times this before trying it again
        self.probe: tuple[int, float] | None = None  # (tier, when) the latest step up reached, until it holds
        self.changes: deque[dict] = deque(maxlen=HISTORY)

    @property
    def tier(self) -> Tier:
        return self.tiers[self.index]

    def observe(self, now: float, tick_s: float, budget_s: float, lag_s: float, cpu: float | None = None
                ) -> Tier | None:
        """One tick's figures (seconds, budget_s > 0; cpu: the process's CPU share, 0..cores, or None). The new
        tier when it changes, else None."""
        s = self.settings
        if self.last is None:
            weight, self.changed_at = 1.0, now
        else:
            weight = min(MAX_WEIGHT, 1 - math.exp(-max(0.0, now - self.last) / s["smoothing_s"]))
        self.last = now
        self.tick_s = _ema(self.tick_s, tick_s, weight)
        self.load = _ema(self.load, tick_s / max(budget_s, 1e-9), weight)
        self.lag_s = _ema(self.lag_s, lag_s, weight)
        if self.lag_s <= s["max_lag_s"]:
            self.lag_floor = 0.0
        if cpu is not None:  # shown in stats; a saturated loop already shows as ticks over budget
            self.cpu = _ema(self.cpu, cpu, weight)
        if self.telemetry is not None and now >= self.next_sample:
            self.gpu, self.next_sample = self.telemetry.sample(), now + s["telemetry_every_s"]
        self.reasons = self._pressure()
        if self.pinned:
            return None
        if self.probe is not None and now - self.probe[1] >= s["up_after_s"]:  # the tier reached holds
            self.backoff[self.probe[0]], self.probe = 1, None
        if self.reasons:
            self.clear_since = None
            if self.pressure_since is None:
                self.pressure_since = now
            if now - self.pressure_since < s["down_after_s"] or self.index == len(self.tiers) - 1:
                return None
            if self.probe is not None and self.probe[0] == self.index:  # left again soon after reaching it
                self.backoff[self.index] = min(self.backoff[self.index] * 2, s["max_backoff"])
                self.probe = None
            self.pressure_since = now  # the next step down needs another down_after_s
            self.lag_floor = max(lag_s, self.lag_s)
            return self._change(now, self.index + 1, "; ".join(self.reasons))
        self.pressure_since = None
        if self.load >= s["headroom"] or self.lag_s > s["max_lag_s"]:  # clear: the lag left over drained too
            self.clear_since = None
            return None
        if self.clear_since is None:
            self.clear_since = now
        if self.index == 0 or now - self.changed_at < s["min_dwell_s"]:
            return None
        held = now - self.clear_since
        if held < s["up_after_s"] * self.backoff[self.index - 1]:
            return None
        self.probe, self.clear_since = (self.index - 1, now), now
        return self._change(now, self.index - 1, f"headroom for {held:.1f} s (ticks {self.load:.2f} x budget, "
                                                 f"lag {self.lag_s:.3f} s)")

    def _pressure(self) -> list[str]:
        s = self.settings
        reasons = []
        # Lag the tier before left behind takes a while to drain even where this tier keeps up; it must not push
        # this one down too. Lag counts again once it grows past what it was at the step, or drains and comes back.
        if self.lag_s > max(s["max_lag_s"], self.lag_floor):
            reasons.append(f"lag {self.lag_s:.3f} s")
        if self.load > 1:
            reasons.append(f"ticks {self.load:.2f} x budget")
        near = reasons or self.load >= NEAR_BUDGET
        return reasons + gpu_distress(self.gpu, s, bool(near))

    def _change(self, now: float, index: int, reason: str) -> Tier:
        before, self.index, self.changed_at = self.tier, index, now
        self.changes.append({"at": now, "from": before.name, "to": self.tier.name, "reason": reason})
        log.info("tier %s -> %s: %s", before.name, self.tier.name, reason)
        return self.tier

    def stats(self) -> dict:
        """For the worker's stats body (plain values)."""
        def rounded(value):
            return None if value is None else round(value, 4)
        return {"tier": self.tier.name, "pinned": self.pinned, "telemetry": dict(self.gpu),
                "tick_s": rounded(self.tick_s), "load": rounded(self.load), "lag_s": rounded(self.lag_s),
                "cpu": rounded(self.cpu), "pressure": list(self.reasons), "changes": list(self.changes)}


def _ema(average: float | None, value: float, weight: float) -> float:
    return value if average is None else average + weight * (value - average)
