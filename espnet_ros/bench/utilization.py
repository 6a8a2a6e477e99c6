"""CPU, GPU and memory utilization over a benchmark run, as a time series.

A ``UtilizationSampler`` reads its sources every ``interval_s`` on a thread and tags each
sample with the phase running then (``phase(label)`` around a timed window), so a report can
show the whole run and summarise each window. Sources:

- ``psutil``: system CPU % (all cores, since the previous sample), this process's CPU %
  (100 = one core busy), system memory used % and MB, this process's RSS.
- ``nvml`` (desktop NVIDIA GPUs, ``pynvml``): GPU busy %, memory-controller busy %, GPU memory
  used.
- ``tegrastats`` (Jetson): GPU load (GR3D_FREQ %), memory-controller load (EMC_FREQ %), RAM
  used (the GPU shares it).

Every dependency (psutil, pynvml, the tegrastats process, the clock) is passed in, so the
tests run each source on fakes; ``detect_sources`` finds the real ones and says why others
are missing.
"""
import contextlib
import csv
import importlib
import os
import re
import threading
import time
from collections import OrderedDict

from ..power.jetson import TegrastatsProcess, tegrastats_command

SCHEMA = "espnet_ros.bench.utilization/1"
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")


class PsutilSource:
    name = "psutil"

    def __init__(self, psutil, pid=None):
        self.psutil = psutil
        self.process = psutil.Process(pid if pid is not None else os.getpid())
        # The first cpu_percent call only sets the baseline for the next one.
        psutil.cpu_percent(interval=None)
        self.process.cpu_percent(interval=None)

    def read(self):
        memory = self.psutil.virtual_memory()
        return OrderedDict([
            ("cpu_percent", float(self.psutil.cpu_percent(interval=None))),
            ("process_cpu_percent", float(self.process.cpu_percent(interval=None))),
            ("memory_percent", float(memory.percent)),
            ("memory_used_mb", memory.used / 2.0 ** 20),
            ("process_rss_mb", self.process.memory_info().rss / 2.0 ** 20)])

    def close(self):
        pass


class NvmlSource:
    name = "nvml"

    def __init__(self, nvml, index=0):
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.name = "nvml:gpu%d" % index

    def read(self):
        rates = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
        memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return OrderedDict([("gpu_percent", float(rates.gpu)),
                            ("gpu_memory_busy_percent", float(rates.memory)),
                            ("gpu_memory_used_mb", memory.used / 2.0 ** 20)])

    def close(self):
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # already shut down or driver gone: nothing left to release
            pass


def parse_tegrastats_utilization(line):
    """{gpu_percent, emc_percent, ram_used_mb, ram_percent} found in one tegrastats line."""
    values = OrderedDict()
    gr3d, emc, ram = _GR3D.search(line), _EMC.search(line), _RAM.search(line)
    if gr3d:
        values["gpu_percent"] = float(gr3d.group(1))
    if emc:
        values["emc_percent"] = float(emc.group(1))
    if ram:
        used, total = float(ram.group(1)), float(ram.group(2))
        values["ram_used_mb"] = used
        values["ram_percent"] = 100.0 * used / total if total else None
    return values


class TegrastatsSource:
    """The latest tegrastats line's loads; lines come from ``feed_line`` or a spawned process."""

    name = "tegrastats"

    def __init__(self, command=None):
        self._latest = OrderedDict()
        self._lock = threading.Lock()
        self.tegrastats = TegrastatsProcess(command, self.feed_line) if command else None
        if self.tegrastats is not None:
            self.tegrastats.start()

    def feed_line(self, line):
        values = parse_tegrastats_utilization(line)
        if values:
            with self._lock:
                self._latest = values
        return bool(values)

    def read(self):
        with self._lock:
            return OrderedDict(self._latest)

    def close(self):
        if self.tegrastats is not None:
            self.tegrastats.close()


def detect_sources(root="/", gpu_index=0, interval_s=0.2):
    """(sources, {kind: reason}) for this machine: psutil, then NVML or tegrastats for the GPU."""
    sources, missing = [], OrderedDict()
    try:
        sources.append(PsutilSource(importlib.import_module("psutil")))
    except Exception as exc:  # not installed, or /proc unreadable
        missing["cpu/memory"] = "psutil: %s" % (str(exc).splitlines()[0][:100] or
                                                type(exc).__name__)
    reasons = []
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
        sources.append(NvmlSource(nvml, gpu_index))
        return sources, missing
    except Exception as exc:  # not installed, no driver, no GPU
        reasons.append("nvml: %s" % (str(exc).splitlines()[0][:80] or type(exc).__name__))
    command = tegrastats_command(root, interval_ms=max(10, int(interval_s * 1000)))
    if command is not None:
        try:
            sources.append(TegrastatsSource(command))
            return sources, missing
        except Exception as exc:  # cannot start it
            reasons.append("tegrastats: %s" % exc)
    else:
        reasons.append("tegrastats: not installed")
    missing["gpu"] = "; ".join(reasons)
    return sources, missing


class UtilizationSampler:
    """Samples every source each ``interval_s`` on a thread; ``sample()`` takes one now."""

    def __init__(self, sources, interval_s=0.2, clock=time.monotonic, missing=None):
        self.sources = list(sources)
        self.interval_s = float(interval_s)
        self.missing = OrderedDict(missing or {})
        self._clock = clock
        self._start = clock()
        self._phase = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.samples = []
        self.windows = []  # (label, start s, end s)
        self.errors = OrderedDict()

    def now(self):
        return self._clock() - self._start

    def sample(self):
        with self._lock:
            row = OrderedDict([("t_s", self.now()), ("phase", self._phase or "")])
            for source in self.sources:
                try:
                    row.update(source.read())
                except Exception as exc:  # a source that fails stops contributing
                    self.errors[source.name] = str(exc)[:200]
            self.samples.append(row)
            return row

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self):
        if self._thread is None and self.sources:
            self.sample()
            self._thread = threading.Thread(target=self._run, name="utilization", daemon=True)
            self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        for source in self.sources:
            source.close()

    @contextlib.contextmanager
    def phase(self, label):
        """Tags the samples taken inside the block (one at each end) with ``label``."""
        if not self.sources:
            yield
            return
        self.sample()  # closes the previous interval: its CPU % belongs to what ran before
        with self._lock:
            self._phase, begin = label, self.now()
        try:
            yield
        finally:
            self.sample()
            with self._lock:
                self._phase = None
                self.windows.append((label, begin, self.now()))

    def summary(self, label):
        """Mean and maximum of each field over the samples of phase ``label``; None if none."""
        rows = [s for s in self.samples if s["phase"] == label]
        if not rows:
            return None
        result = OrderedDict([("samples", len(rows))])
        for field in self.fields():
            values = [r[field] for r in rows if r.get(field) is not None]
            if values:
                result[field + "_mean"] = sum(values) / len(values)
                result[field + "_max"] = max(values)
        return result

    def fields(self):
        names = OrderedDict()
        for row in self.samples:
            for key in row:
                if key not in ("t_s", "phase"):
                    names[key] = None
        return list(names)

    def to_json(self):
        return OrderedDict([
            ("schema", SCHEMA), ("interval_s", self.interval_s),
            ("sources", [s.name for s in self.sources]),
            ("unavailable", dict(self.missing)), ("errors", dict(self.errors)),
            ("fields", self.fields()),
            ("windows", [OrderedDict([("phase", label), ("start_s", a), ("end_s", b)])
                         for label, a, b in self.windows]),
            ("samples", self.samples)])


def write_csv(series, path):
    """One row per sample: t_s, phase, then every field (empty where a source had none)."""
    columns = ["t_s", "phase"] + list(series["fields"])
    with open(str(path), "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for row in series["samples"]:
            writer.writerow({k: ("%.3f" % v if isinstance(v, float) else v)
                             for k, v in row.items()})
