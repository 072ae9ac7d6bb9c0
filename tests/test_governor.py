"""The governor against synthetic traces: ticks at 200 per second whose cost depends on the tier and on a load
that the test sets, a lag that grows while ticks overrun their budget and drains while they do not, and a fake
NVML. Quickly down, slowly up, no oscillation, spikes ignored, pinned tiers kept, NVML optional."""
import logging
import random

import msgpack
import pytest

from backchannel.bridge.governor import (
    DEFAULT_SETTINGS,
    TIERS_FILE,
    Governor,
    Telemetry,
    Tier,
    load_tiers,
    nvml_id,
)

TIERS, SETTINGS = load_tiers()
S = SETTINGS
RATE = 200  # ticks per second
BUDGET = 1 / 30  # one frame's worth of work
BASE_LAG = 0.04  # the jitter buffer's wait: the lag of a worker that keeps up
# a tier's tick as a share of the budget at load 1: each model step roughly halves it; the baseline is nearly free
COST = {"full": 1.0, "fast": 0.55, "faster": 0.3, "baseline": 0.1}


class Sim:
    """A worker's ticks as the governor sees them. Load 1: the full tier takes its whole budget."""

    def __init__(self, governor: Governor, seed: int = 0):
        self.governor, self.rng = governor, random.Random(seed)
        self.now, self.lag = 0.0, BASE_LAG
        self.changes: list[tuple[float, str]] = []

    def tick(self, load: float, noise: float = 0.0, tick_s: float | None = None) -> None:
        """One tick; `tick_s` forces its length (a stall: the clock moves on by it)."""
        ratio = COST[self.governor.tier.name] * load * max(0.0, 1 + self.rng.gauss(0, noise))
        dt = 1 / RATE
        if tick_s is not None:
            ratio, dt = tick_s / BUDGET, tick_s
        # overrunning, the worker does 1/ratio of real time's work; with time to spare it catches up
        self.lag = max(BASE_LAG, self.lag + dt * (1 - 1 / max(ratio, 1e-3)))
        self.now += dt
        tier = self.governor.observe(self.now, ratio * BUDGET, BUDGET, self.lag, cpu=min(1.0, ratio))
        if tier is not None:
            self.changes.append((self.now, tier.name))

    def run(self, seconds: float, load: float, noise: float = 0.0) -> None:
        for _ in range(round(seconds * RATE)):
            self.tick(load, noise)


def names(changes):
    return [name for _, name in changes]


# --- the tier table ---------------------------------------------------------------------------------------------------

def test_the_shipped_table_loads():
    assert [t.name for t in TIERS] == ["full", "fast", "faster", "baseline"]
    assert TIERS[0] == Tier("full", "model[sampler_steps=4]", 512, 85)
    assert TIERS[-1].generator == "baseline"
    assert set(SETTINGS) == set(DEFAULT_SETTINGS)
    assert SETTINGS == DEFAULT_SETTINGS  # the shipped table spells out the defaults
    assert S["down_after_s"] < S["min_dwell_s"] <= S["up_after_s"]


def test_the_table_is_package_data():
    assert TIERS_FILE.is_file()
    assert TIERS_FILE.parent.name == "calibration"


GOOD_TIER = 'name = "a"\ngenerator = "baseline"\nframe_size = 256\nframe_quality = 60\n'


@pytest.mark.parametrize("text, says", [
    ("", "no tiers"),
    ("tier = []", "no tiers"),
    ("[[tier]]\n" + GOOD_TIER + "colour = 1\n", "tier 1 (a): unknown key(s) colour"),
    ("[[tier]]\n" + GOOD_TIER.replace("256", '"256"'), "tier 1 (a): frame_size must be a whole number"),
    ("[[tier]]\n" + GOOD_TIER.replace("60", "101"), "tier 1 (a): frame_quality must be a whole number in 1..100"),
    ("[[tier]]\n" + GOOD_TIER.replace("frame_size = 256\n", ""), "tier 1 (a): frame_size missing"),
    ("[[tier]]\n" + GOOD_TIER.replace('"a"', "3"), "tier 1: name must be text"),
    ("[[tier]]\n" + GOOD_TIER.replace('"baseline"', '"modle"'), "generator 'modle' is none of baseline, model"),
    ("[[tier]]\n" + GOOD_TIER.replace('"baseline"', '"model[sampler_steps=2"'), "options go in brackets"),
    ("[[tier]]\n" + GOOD_TIER + "[[tier]]\n" + GOOD_TIER, "tier name(s) given twice: a"),
    ("[[tier]]\n" + GOOD_TIER + "[governor]\nup_after = 3\n", "[governor]: unknown key(s) up_after"),
    ("[[tier]]\n" + GOOD_TIER + "[governor]\nheadroom = 1.5\n", "[governor]: headroom must be a share"),
    ("[[tier]]\n" + GOOD_TIER + "[governor]\ndown_after_s = \"fast\"\n", "down_after_s must be a positive number"),
    ("[[tier]]\n" + GOOD_TIER + "[extra]\n", "unknown key(s) extra"),
    ("[[tier]\n", "is not TOML"),
])
def test_a_malformed_table_is_one_clear_error(tmp_path, text, says):
    path = tmp_path / "tiers.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_tiers(path)
    assert str(path) in str(error.value) and says in str(error.value), str(error.value)


def test_a_table_may_leave_settings_to_the_defaults(tmp_path):
    path = tmp_path / "tiers.toml"
    path.write_text("[[tier]]\n" + GOOD_TIER + "[governor]\nup_after_s = 20\n")
    tiers, settings = load_tiers(path)
    assert tiers == [Tier("a", "baseline", 256, 60)]
    assert settings == {**DEFAULT_SETTINGS, "up_after_s": 20}


def test_an_unknown_pinned_tier_lists_the_names():
    with pytest.raises(ValueError, match="unknown tier 'best'; choose from full, fast, faster, baseline"):
        Governor(TIERS, SETTINGS, pinned="best")


# --- down fast, up slowly ---------------------------------------------------------------------------------------------

def overloaded():
    """5 s light, then an overload no tier keeps up with (load 12: even the baseline overruns)."""
    sim = Sim(Governor(TIERS, SETTINGS))
    sim.run(5, 0.3)
    assert sim.changes == []
    sim.run(15, 12)
    return sim


def test_a_sudden_overload_steps_down_within_down_after_s_to_the_baseline():
    sim = overloaded()
    assert names(sim.changes) == ["fast", "faster", "baseline"]
    times = [t for t, _ in sim.changes]
    down = S["down_after_s"]
    assert 5 + down <= times[0] <= 5 + down + 0.1  # pressure shows within a few ticks, then must hold down_after_s
    for before, after in zip(times, times[1:]):
        assert down <= after - before <= down + 0.05  # and again each further down_after_s
    assert sim.governor.changes[0]["reason"].startswith("lag") or "budget" in sim.governor.changes[0]["reason"]


def test_after_the_load_ends_it_climbs_back_one_tier_at_a_time_slowly():
    sim = overloaded()
    sim.changes.clear()
    sim.run(60, 0.3)  # from t = 20
    assert names(sim.changes) == ["faster", "fast", "full"]
    times = [20.0] + [t for t, _ in sim.changes]
    for before, after in zip(times, times[1:]):
        assert after - before >= max(S["up_after_s"], S["min_dwell_s"])
    assert times[-1] < 20 + 3 * S["up_after_s"] + 1  # and no slower than that
    assert "headroom" in sim.governor.changes[-1]["reason"]


@pytest.mark.parametrize("load", [0.85, 0.9, 0.95, 1.0, 1.05])
def test_a_steady_borderline_load_does_not_oscillate(load):
    """Near the full tier's limit, ticks jittering 20% around it: five minutes, at most a couple of changes."""
    sim = Sim(Governor(TIERS, SETTINGS), seed=1)
    sim.run(300, load, noise=0.2)
    assert len(sim.changes) <= 2, sim.changes


def test_near_the_headroom_line_it_does_not_climb_and_fall():
    """Stepped down to the fast tier, which then runs at half its budget give or take 20%: the full tier would
    fit (just), so at most one climb back, and no falls."""
    sim = Sim(Governor(TIERS, SETTINGS), seed=2)
    sim.run(2, 1.2)
    assert names(sim.changes) == ["fast"]
    sim.run(300, 0.5 / COST["fast"], noise=0.2)
    assert names(sim.changes) in (["fast"], ["fast", "full"]), sim.changes


def test_lag_left_over_from_the_tier_before_does_not_push_the_next_one_down():
    """Load 1.7: the full tier overruns and the worker falls behind; the fast tier keeps up (at 94%) but drains
    that lag slowly. One step, not two."""
    sim = Sim(Governor(TIERS, SETTINGS))
    sim.run(2, 0.3)
    sim.run(30, 1.7)
    assert names(sim.changes) == ["fast"]
    assert sim.lag == BASE_LAG  # caught up


def test_a_tier_that_fails_each_time_it_is_tried_is_tried_less_often():
    """Load 4: the baseline has headroom but the next tier up overruns. Each failed try doubles the wait."""
    sim = Sim(Governor(TIERS, SETTINGS))
    sim.run(300, 4)
    assert names(sim.changes[:3]) == ["fast", "faster", "baseline"]
    tries = [t for t, name in sim.changes[3:] if name == "faster"]
    assert names(sim.changes[3:]) == ["faster", "baseline"] * len(tries)
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert len(tries) <= 5 and len(gaps) >= 2, sim.changes  # without backing off: one try every ~10.5 s
    for shorter, longer in zip(gaps, gaps[1:]):
        assert longer >= 1.8 * shorter


@pytest.mark.parametrize("stall_s", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("load", [0.3, 0.6])
def test_a_single_slow_tick_changes_nothing(load, stall_s):
    """One tick of 3 to 9 budgets. (A stall that leaves the worker behind for longer than down_after_s, at a load
    that leaves little time to catch up, is a shortfall, and does step down.)"""
    sim = Sim(Governor(TIERS, SETTINGS))
    sim.run(5, load)
    sim.tick(load, tick_s=stall_s)
    assert sim.governor.stats()["pressure"]  # it is seen...
    sim.run(5, load)
    assert sim.changes == []  # ...and forgotten
    assert sim.governor.stats()["pressure"] == []


def test_a_pinned_tier_never_changes():
    for pinned in ("full", "baseline"):
        sim = Sim(Governor(TIERS, SETTINGS, pinned=pinned))
        sim.run(10, 12)
        sim.run(30, 0.1)
        assert sim.changes == [] and sim.governor.tier.name == pinned
        assert sim.governor.stats()["pinned"] is True


def test_stats_say_where_it_stands_and_pack():
    sim = overloaded()
    stats = sim.governor.stats()
    assert stats["tier"] == "baseline" and stats["pinned"] is False
    assert stats["tick_s"] > BUDGET and stats["lag_s"] > S["max_lag_s"] and stats["load"] > 1
    assert 0 < stats["cpu"] <= 1 and stats["pressure"] and stats["telemetry"] == {}
    assert [c["to"] for c in stats["changes"]] == ["fast", "faster", "baseline"]
    assert {"at", "from", "to", "reason"} == set(stats["changes"][0])
    assert msgpack.unpackb(msgpack.packb(stats)) == stats


def test_the_history_is_short():
    sim = Sim(Governor(TIERS, SETTINGS))
    for _ in range(8):
        sim.run(2, 12)
        sim.run(40, 0.1)
    assert len(sim.changes) > 20 and len(sim.governor.stats()["changes"]) == 10


# --- GPU telemetry ----------------------------------------------------------------------------------------------------

class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class Figures:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class FakeNVML:
    """pynvml's calls the governor makes, with figures a test sets; `fail`: an NVML error code from then on."""
    NVMLError = NVMLError

    def __init__(self, fail_init=None, temperature=60, reasons=0x0, unsupported=(), utilization=40):
        self.fail_init, self.fail, self.unsupported = fail_init, None, set(unsupported)
        self.temperature, self.reasons, self.utilization = temperature, reasons, utilization
        self.shut = False

    def nvmlInit(self):
        if self.fail_init is not None:
            raise NVMLError(self.fail_init)

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return ("handle", uuid)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        return ("handle", bus_id)

    def _figure(self, name, value):
        if self.fail is not None:
            raise NVMLError(self.fail)
        if name in self.unsupported:
            raise NVMLError(3)  # NVML_ERROR_NOT_SUPPORTED
        return value

    def nvmlDeviceGetUtilizationRates(self, handle):
        return self._figure("utilization", Figures(gpu=self.utilization, memory=20))

    def nvmlDeviceGetMemoryInfo(self, handle):
        return self._figure("memory", Figures(total=80 << 30, used=20 << 30, free=60 << 30))

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._figure("temperature", self.temperature)

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return self._figure("clock", 1980)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._figure("reasons", self.reasons)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._figure("power", 312_500)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self._figure("processes", [Figures(pid=1, usedGpuMemory=3 << 30), Figures(pid=2, usedGpuMemory=None),
                                          Figures(pid=99, usedGpuMemory=5 << 30)])

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return self._figure("processes", [Figures(pid=1, usedGpuMemory=3 << 30)])


def test_telemetry_reads_nvml():
    sample = Telemetry(0, nvml=FakeNVML(reasons=0x1 | 0x20), pid=99).sample()
    assert sample == {"gpu": 0, "utilization_pct": 40, "memory_used_mb": 20480, "memory_free_mb": 61440,
                      "memory_total_mb": 81920, "temperature_c": 60, "sm_clock_mhz": 1980,
                      "throttle": ["gpu_idle", "sw_thermal_slowdown"], "power_w": 312.5,
                      "others_memory_mb": 3072}  # pid 1 once (compute and graphics), not this process (99)


def test_the_gpu_torch_uses_is_found_in_nvml_by_uuid_or_bus_id_whatever_cuda_visible_devices_says(monkeypatch):
    """torch's cuda:0 under CUDA_VISIBLE_DEVICES=3 is NVML's GPU 3: it is named by what does not change."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert nvml_id("cpu") is None  # no GPU to read
    assert nvml_id("cuda:0", Figures(uuid="8c2f4a1e-5b7d-4e2a-9c1f-0a1b2c3d4e5f")) == \
        "GPU-8c2f4a1e-5b7d-4e2a-9c1f-0a1b2c3d4e5f"
    assert nvml_id("cuda", Figures(uuid="", pci_bus_id=0x41, pci_device_id=0, pci_domain_id=0)) == "00000000:41:00.0"
    assert nvml_id("cuda:1", Figures()) is None  # renumbered, and nothing else to tell it by: read nothing
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert nvml_id("cuda:1", Figures()) == 1  # numbered alike
    for gpu in ("GPU-8c2f4a1e", "00000000:41:00.0", 1):
        telemetry = Telemetry(gpu, nvml=FakeNVML())
        assert telemetry.handle == ("handle", gpu) and telemetry.sample()["gpu"] == gpu


def test_a_figure_the_gpu_lacks_is_left_out_and_the_rest_still_count(caplog):
    telemetry = Telemetry(0, nvml=FakeNVML(unsupported={"power", "utilization"}))
    sample = telemetry.sample()
    assert "power_w" not in sample and "utilization_pct" not in sample and sample["temperature_c"] == 60
    assert telemetry.sample() and not caplog.records


def logged(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "backchannel.governor"]


def run_on(telemetry, seconds=3, load=0.3):
    sim = Sim(Governor(TIERS, SETTINGS, telemetry=telemetry))
    sim.run(seconds, load)
    return sim


@pytest.mark.parametrize("case", ["not installed", "no driver", "fails mid-run"])
def test_without_nvml_the_governor_runs_on_deadlines_alone_and_says_so_once(caplog, monkeypatch, case):
    caplog.set_level(logging.INFO, "backchannel.governor")
    fake = FakeNVML()
    if case == "not installed":
        monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # `import pynvml` raises ImportError
        telemetry = Telemetry()
    elif case == "no driver":
        telemetry = Telemetry(nvml=FakeNVML(fail_init=9))  # NVML_ERROR_DRIVER_NOT_LOADED
    else:
        telemetry = Telemetry(nvml=fake)
        assert telemetry.sample()["temperature_c"] == 60
        fake.fail = 15  # NVML_ERROR_GPU_IS_LOST
    assert telemetry.sample() == {}
    sim = run_on(telemetry, seconds=3, load=0.3)
    assert telemetry.sample() == {} and sim.governor.stats()["telemetry"] == {}
    lines = logged(caplog)
    assert len(lines) == 1 and "deadlines alone" in lines[0], lines
    sim.run(10, 12)  # deadlines still count
    assert names(sim.changes) == ["fast", "faster", "baseline"]
    assert len(logged(caplog)) == 1 + 3  # and each change is a line of its own
    assert {"not installed": "pynvml is not installed", "no driver": "NVML did not start",
            "fails mid-run": "NVML failed"}[case] in lines[0]
    assert fake.shut == (case == "fails mid-run")


@pytest.mark.parametrize("fake, says", [
    (FakeNVML(temperature=90), "gpu at 90 C"),
    (FakeNVML(reasons=0x40), "gpu throttled (hw_thermal_slowdown)"),
    (FakeNVML(reasons=0x1 | 0x20), "gpu throttled (sw_thermal_slowdown)"),
])
def test_gpu_distress_steps_down_with_the_reason(fake, says):
    sim = run_on(Telemetry(nvml=fake), seconds=2.5, load=0.3)  # light load: deadlines alone would stay
    assert names(sim.changes) == ["fast", "faster", "baseline"]
    assert sim.changes[0][0] <= S["down_after_s"] + S["telemetry_every_s"] + 0.05
    assert all(says in change["reason"] for change in sim.governor.changes)
    assert sim.governor.stats()["telemetry"]["temperature_c"] == fake.temperature


def test_an_idle_or_set_clock_is_no_distress_and_a_cool_gpu_lets_it_climb():
    fake = FakeNVML(reasons=0x1 | 0x2, temperature=90)
    sim = run_on(Telemetry(nvml=fake), seconds=2, load=0.3)
    assert sim.governor.tier.name == "baseline"
    fake.temperature = 70
    sim.changes.clear()
    sim.run(40, 0.3)
    assert names(sim.changes) == ["faster", "fast", "full"]


def test_a_gpu_busy_with_our_own_work_at_its_power_cap_is_no_distress_while_deadlines_are_met():
    """A busy H100: 99% utilisation, clocks held by the software power cap, ticks at 30-60% of their budget. Five
    minutes, no step down."""
    sim = run_on(Telemetry(nvml=FakeNVML(utilization=99, reasons=0x4)), seconds=300, load=0.5)
    assert sim.changes == [] and sim.governor.stats()["pressure"] == []


def test_a_saturated_gpu_counts_once_the_ticks_near_their_budget():
    sim = run_on(Telemetry(nvml=FakeNVML(utilization=99)), seconds=3, load=0.9)  # 90%: meets deadlines, barely
    assert names(sim.changes)[:1] == ["fast"] and "gpu 99% busy" in sim.governor.changes[0]["reason"]
    assert names(run_on(Telemetry(nvml=FakeNVML(utilization=40)), seconds=3, load=0.9).changes) == []
