"""CPU / GPU / memory utilization sampling on fakes: psutil, pynvml, recorded tegrastats lines,
a fake clock; the CSV/JSON series and per-phase summaries; the real psutil on this machine."""
import csv
import sys
import time
import types
from collections import namedtuple

import pytest
from test_power import JP4_TX2, JP5_NX, ORIN_AGX, FakeClock, fake_tegrastats

from espnet_ros.bench import utilization
from espnet_ros.bench.utilization import (
    NvmlSource,
    PsutilSource,
    TegrastatsSource,
    UtilizationSampler,
    detect_sources,
    parse_tegrastats_utilization,
    write_csv,
)

Memory = namedtuple("Memory", "percent used")
Rss = namedtuple("Rss", "rss")


def fake_psutil(cpu=(0.0, 50.0, 100.0), process_cpu=(0.0, 90.0, 180.0), rss_mib=(100, 120, 110)):
    """psutil replaying the given readings (the first cpu_percent calls are the baselines)."""
    module = types.ModuleType("psutil")
    cpu, process_cpu, rss = list(cpu), list(process_cpu), list(rss_mib)
    module.cpu_percent = lambda interval=None: cpu.pop(0)

    class Process:
        def __init__(self, pid):
            self.pid = pid

        def cpu_percent(self, interval=None):
            return process_cpu.pop(0)

        def memory_info(self):
            return Rss(rss.pop(0) * 2 ** 20)

    module.Process = Process
    module.virtual_memory = lambda: Memory(40.0, 3 * 2 ** 30)
    return module


def test_psutil_source_reads_cpu_memory_and_the_process():
    source = PsutilSource(fake_psutil(), pid=1234)
    assert source.process.pid == 1234
    first, second = source.read(), source.read()
    assert first == {"cpu_percent": 50.0, "process_cpu_percent": 90.0, "memory_percent": 40.0,
                     "memory_used_mb": 3072.0, "process_rss_mb": 100.0}
    assert second["cpu_percent"] == 100.0 and second["process_rss_mb"] == 120.0


def test_nvml_source_reads_gpu_busy_and_memory():
    rates = namedtuple("Rates", "gpu memory")
    info = namedtuple("Info", "total free used")
    nvml = types.SimpleNamespace(
        nvmlDeviceGetHandleByIndex=lambda i: "gpu%d" % i,
        nvmlDeviceGetUtilizationRates=lambda h: rates(87, 31),
        nvmlDeviceGetMemoryInfo=lambda h: info(8 * 2 ** 30, 6 * 2 ** 30, 2 * 2 ** 30),
        nvmlShutdown=lambda: None)
    source = NvmlSource(nvml, index=1)
    assert source.name == "nvml:gpu1" and source.handle == "gpu1"
    assert source.read() == {"gpu_percent": 87.0, "gpu_memory_busy_percent": 31.0,
                             "gpu_memory_used_mb": 2048.0}


@pytest.mark.parametrize("line, expected", [
    (JP4_TX2.replace("GR3D_FREQ 0%@114", "GR3D_FREQ 57%@1300").replace("EMC_FREQ 0%", "EMC_FREQ 12%"),
     {"gpu_percent": 57.0, "emc_percent": 12.0, "ram_used_mb": 2200.0,
      "ram_percent": 100.0 * 2200 / 7860}),
    (JP5_NX.replace("GR3D_FREQ 0%@[305]", "GR3D_FREQ 99%@[305]"),
     {"gpu_percent": 99.0, "emc_percent": 0.0, "ram_used_mb": 1810.0,
      "ram_percent": 100.0 * 1810 / 7620}),
    (ORIN_AGX, {"gpu_percent": 0.0, "emc_percent": 0.0, "ram_used_mb": 4200.0,
                "ram_percent": 100.0 * 4200 / 30536}),
    ("VDD_IN 5000mW/5000mW", {}),
])
def test_tegrastats_lines_give_gpu_memory_controller_and_ram_load(line, expected):
    assert parse_tegrastats_utilization(line) == pytest.approx(expected)


def test_tegrastats_source_keeps_the_latest_line():
    source = TegrastatsSource()
    assert source.read() == {}
    assert not source.feed_line("RAM?")
    assert source.feed_line(JP5_NX.replace("GR3D_FREQ 0%", "GR3D_FREQ 40%"))
    assert source.read()["gpu_percent"] == 40.0


@pytest.fixture
def no_pynvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)


def test_detect_spawns_tegrastats_on_a_jetson_tree(tmp_path, monkeypatch, no_pynvml):
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil(cpu=[0.0] * 9, process_cpu=[0.0] * 9,
                                                            rss_mib=[1] * 9))
    fake_tegrastats(tmp_path, JP4_TX2.replace("GR3D_FREQ 0%", "GR3D_FREQ 63%"))
    sources, missing = detect_sources(root=str(tmp_path), interval_s=0.05)
    try:
        assert [s.name for s in sources] == ["psutil", "tegrastats"] and not missing
        tegrastats = sources[1]
        assert tegrastats.tegrastats.command[1:] == ["--interval", "50"]
        for _ in range(200):  # the fake prints a line every 20 ms
            if tegrastats.read():
                break
            time.sleep(0.01)
        assert tegrastats.read()["gpu_percent"] == 63.0
        process = tegrastats.tegrastats.process
    finally:
        for source in sources:
            source.close()
    assert process.poll() is not None


def test_detect_names_what_is_missing(tmp_path, monkeypatch, no_pynvml):
    monkeypatch.setitem(sys.modules, "psutil", None)
    sources, missing = detect_sources(root=str(tmp_path))
    assert sources == []
    assert missing["cpu/memory"].startswith("psutil: ")
    assert missing["gpu"].startswith("nvml: ") and "pynvml" in missing["gpu"]
    assert missing["gpu"].endswith("; tegrastats: not installed")


class Scripted:
    """A source whose readings the test sets."""

    name = "scripted"

    def __init__(self):
        self.value = 0.0
        self.fail = False

    def read(self):
        if self.fail:
            raise OSError("sensor gone")
        return {"cpu_percent": self.value, "gpu_percent": 2 * self.value}

    def close(self):
        pass


def test_sampler_phases_summaries_and_series_on_a_fake_clock(tmp_path):
    clock, source = FakeClock(50.0), Scripted()
    sampler = UtilizationSampler([source], interval_s=0.5, clock=clock)
    source.value = 10.0
    sampler.sample()                      # before any phase: not in the summary
    clock.now += 1.0
    source.value = 30.0
    with sampler.phase("espnet/torch/64x32"):
        clock.now += 0.5
        source.value = 50.0
        sampler.sample()
        clock.now += 0.5
        source.value = 70.0
    summary = sampler.summary("espnet/torch/64x32")
    # Entering samples once (30: what ran before, untagged); inside 50; leaving 70.
    assert summary == {"samples": 2, "cpu_percent_mean": 60.0, "cpu_percent_max": 70.0,
                       "gpu_percent_mean": 120.0, "gpu_percent_max": 140.0}
    assert sampler.summary("never") is None
    assert [s["t_s"] for s in sampler.samples] == [0.0, 1.0, 1.5, 2.0]
    assert sampler.windows == [("espnet/torch/64x32", 1.0, 2.0)]
    source.fail = True
    sampler.sample()
    assert sampler.errors == {"scripted": "sensor gone"}

    series = sampler.to_json()
    assert series["schema"] == utilization.SCHEMA and series["sources"] == ["scripted"]
    assert series["fields"] == ["cpu_percent", "gpu_percent"]
    write_csv(series, tmp_path / "u.csv")
    rows = list(csv.DictReader(open(str(tmp_path / "u.csv"))))
    assert [r["phase"] for r in rows] == ["", "", "espnet/torch/64x32", "espnet/torch/64x32", ""]
    assert rows[2]["cpu_percent"] == "50.000" and rows[4]["cpu_percent"] == ""


def test_sampler_thread_samples_until_stopped():
    source = Scripted()
    sampler = UtilizationSampler([source], interval_s=0.01).start()
    try:
        deadline = time.monotonic() + 10
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sampler.stop()
    count = len(sampler.samples)
    assert count >= 3
    time.sleep(0.05)
    assert len(sampler.samples) == count


def test_no_sources_means_no_samples_and_no_thread():
    sampler = UtilizationSampler([], missing={"all": "disabled"}).start()
    with sampler.phase("x"):
        pass
    sampler.stop()
    assert sampler.samples == [] and sampler.summary("x") is None
    assert sampler.to_json()["unavailable"] == {"all": "disabled"}


def test_real_psutil_on_this_machine():
    psutil = pytest.importorskip("psutil")
    source = PsutilSource(psutil)
    sum(i * i for i in range(200000))  # some CPU time for the process to show
    reading = source.read()
    assert 0.0 <= reading["cpu_percent"] <= 100.0
    assert reading["process_rss_mb"] > 10 and 0 < reading["memory_percent"] < 100
