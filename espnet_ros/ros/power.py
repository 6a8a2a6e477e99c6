"""Average power and energy per frame from the best power source this machine has.

``detect_power_source(root)`` tries these sources in order and returns the first that works:

1. ``ina3221_hwmon``: Jetson INA3221 rails, JetPack 5+ hwmon (``in*_input`` mV x ``curr*_input``
   mA).
2. ``ina3221_iio``: Jetson INA3221 rails, JetPack 4 iio (``in_power*_input`` mW).
3. ``tegrastats``: the Jetson ``tegrastats`` tool, for when the rails in sysfs are not readable.
4. ``nvml``: NVIDIA GPU board power via ``pynvml`` (nvidia-ml-py): the total energy counter when
   the GPU has one, else sampled power.
5. ``rapl``: Intel/AMD CPU package energy counters in ``/sys/class/powercap``.

Jetson sources measure the module input rail (``VDD_IN``/``POM_5V_IN``) or, where a board has none,
the sum of its rails; NVML measures only the GPU board and RAPL only the CPU packages. The meter
``name`` says which. When nothing is found the meter has ``available`` False and a ``reason``:
callers report that instead of a number.
"""
import collections
import glob
import os
import re
import shutil
import subprocess
import threading
import time

__all__ = [
    "DEFAULT_SOURCES",
    "PowerReadError",
    "PowerMeter",
    "UnavailablePowerMeter",
    "CounterMeter",
    "SampledMeter",
    "RailsMeter",
    "TegrastatsMeter",
    "NvmlEnergyMeter",
    "NvmlPowerMeter",
    "RaplMeter",
    "PowerSummary",
    "PowerMonitor",
    "parse_tegrastats",
    "select_total_rail",
    "detect_power_source",
]

DEFAULT_SOURCES = ("ina3221_hwmon", "ina3221_iio", "tegrastats", "nvml", "rapl")

# Rails that carry the whole module's input power.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
# JetPack 4 Xavier AGX rails, printed by tegrastats without a unit or a prefix.
_BARE_RAILS = ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")
_RAIL_PREFIXES = ("VDD_", "POM_", "VIN_")
# "NAME now/avg" with an optional mW unit; the lookahead rejects "RAM 1500/3956MB".
_TEGRASTATS_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?(?=\s|$)")


class PowerReadError(RuntimeError):
    """A power source that was found could not be read."""


class PowerMeter:
    """Energy in joules since ``start()``; ``read()`` before ``start()`` starts the meter."""

    def __init__(self, name, clock=time.monotonic):
        self.name = name
        self.available = True
        self.reason = ""
        self._clock = clock
        self._started = False
        self._energy_j = 0.0

    def start(self):
        self._energy_j = 0.0
        self._begin()
        self._started = True

    def read(self):
        if not self._started:
            self.start()
            return 0.0
        self._energy_j += self._advance()
        return self._energy_j

    def close(self):
        """Release the source (processes, libraries); the meter is unusable afterwards."""

    def _begin(self):
        raise NotImplementedError

    def _advance(self):
        """Joules consumed since the previous ``_begin``/``_advance``."""
        raise NotImplementedError

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.name)


class UnavailablePowerMeter(PowerMeter):
    """Stands in when no source exists; never produces a number."""

    def __init__(self, reason):
        super().__init__("unavailable")
        self.available = False
        self.reason = reason

    def _begin(self):
        raise PowerReadError(self.reason)

    def _advance(self):
        raise PowerReadError(self.reason)


class CounterMeter(PowerMeter):
    """Sums the deltas of hardware energy counters, each with an optional wrap-around range."""

    def __init__(self, name, joules_per_unit, wrap_ranges, clock=time.monotonic):
        super().__init__(name, clock)
        self._joules_per_unit = joules_per_unit
        self._wrap_ranges = list(wrap_ranges)
        self._last = None

    def _read_counters(self):
        raise NotImplementedError

    def _begin(self):
        self._last = self._read_counters()

    def _advance(self):
        now = self._read_counters()
        units = 0
        for previous, current, wrap in zip(self._last, now, self._wrap_ranges):
            delta = current - previous
            if delta < 0 and wrap:
                delta += wrap
            units += max(delta, 0)
        self._last = now
        return units * self._joules_per_unit


class SampledMeter(PowerMeter):
    """Integrates instantaneous power (trapezoid rule) between successive reads."""

    def __init__(self, name, clock=time.monotonic):
        super().__init__(name, clock)
        self._last_sample = None

    def power_w(self):
        """Instantaneous power in watts."""
        raise NotImplementedError

    def _begin(self):
        self._last_sample = (self._clock(), self.power_w())

    def _advance(self):
        now, watts = self._clock(), self.power_w()
        then, previous_watts = self._last_sample
        self._last_sample = (now, watts)
        return 0.5 * (watts + previous_watts) * max(now - then, 0.0)


def _read_number(path):
    with open(path) as handle:
        return float(handle.read().strip())


def _read_text(path):
    with open(path) as handle:
        return handle.read().strip()


def select_total_rail(rails_mw):
    """Pick ``(label, mW)`` from ``{rail: mW}``: the input rail if present, else the sum."""
    for name in TOTAL_RAILS:
        if name in rails_mw:
            return name, rails_mw[name]
    if not rails_mw:
        raise ValueError("no power rails to choose from")
    names = sorted(rails_mw)
    return "sum(%s)" % ",".join(names), sum(rails_mw[name] for name in names)


class RailsMeter(SampledMeter):
    """Jetson INA3221 rails in sysfs; ``rails`` maps a label to a function returning mW."""

    def __init__(self, name, rails, clock=time.monotonic):
        super().__init__(name, clock)
        self.rails = dict(rails)

    def rails_mw(self):
        try:
            return dict((label, read()) for label, read in self.rails.items())
        except (OSError, ValueError) as exc:
            raise PowerReadError("%s: %s" % (self.name, exc)) from exc

    def power_w(self):
        return sum(self.rails_mw().values()) / 1000.0


def _hwmon_rail(voltage_path, current_path):
    return lambda: _read_number(voltage_path) * _read_number(current_path) / 1000.0


def _iio_rail(power_path):
    return lambda: _read_number(power_path)


def _ignored_label(label):
    # "NC" marks an unconnected channel; INA3221 also exposes a "sum of shunt voltages" input.
    return not label or label.upper() == "NC" or label.lower().startswith("sum of")


def _find_hwmon_rails(root):
    pattern = os.path.join(root, "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in[123]_label")
    rails = {}
    for label_path in sorted(glob.glob(pattern)):
        label = _read_text(label_path)
        channel = os.path.basename(label_path)[2]
        folder = os.path.dirname(label_path)
        voltage = os.path.join(folder, "in%s_input" % channel)
        current = os.path.join(folder, "curr%s_input" % channel)
        if not _ignored_label(label) and os.path.exists(voltage) and os.path.exists(current):
            rails[label] = _hwmon_rail(voltage, current)
    return rails


def _find_iio_rails(root):
    pattern = os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_[012]")
    rails = {}
    for label_path in sorted(glob.glob(pattern)):
        label = _read_text(label_path)
        power = os.path.join(os.path.dirname(label_path), "in_power%s_input" % label_path[-1])
        if not _ignored_label(label) and os.path.exists(power):
            rails[label] = _iio_rail(power)
    return rails


def _rails_meter(kind, found, clock):
    """Build a meter for the total rail (or every rail) and check that it reads."""
    for name in TOTAL_RAILS:
        if name in found:
            found = {name: found[name]}
            break
    label = next(iter(found)) if len(found) == 1 else "sum(%s)" % ",".join(sorted(found))
    meter = RailsMeter("%s:%s" % (kind, label), found, clock)
    try:
        meter.power_w()
    except PowerReadError as exc:
        return None, "%s: cannot read rails (%s)" % (kind, exc)
    return meter, ""


def _detect_hwmon(root, clock, _device_index):
    try:
        found = _find_hwmon_rails(root)
    except OSError as exc:
        return None, "ina3221_hwmon: %s" % exc
    if not found:
        return None, "ina3221_hwmon: no INA3221 hwmon rails"
    return _rails_meter("ina3221_hwmon", found, clock)


def _detect_iio(root, clock, _device_index):
    try:
        found = _find_iio_rails(root)
    except OSError as exc:
        return None, "ina3221_iio: %s" % exc
    if not found:
        return None, "ina3221_iio: no INA3221 iio rails"
    return _rails_meter("ina3221_iio", found, clock)


def parse_tegrastats(line):
    """Return ``{rail: current mW}`` from one tegrastats line (JetPack 4, 5 and 6 formats)."""
    rails = {}
    for name, now_mw, unit, _avg, _avg_unit in _TEGRASTATS_RAIL.findall(line):
        if unit or name.startswith(_RAIL_PREFIXES) or name in _BARE_RAILS:
            rails[name] = float(now_mw)
    return rails


class TegrastatsMeter(SampledMeter):
    """Power from tegrastats lines: fed by ``feed_line`` or by a spawned tegrastats process."""

    def __init__(self, command=None, clock=time.monotonic, first_line_timeout_s=3.0):
        super().__init__("tegrastats", clock)
        self.command = list(command) if command else None
        self.first_line_timeout_s = first_line_timeout_s
        self.rail = None
        self._latest_w = None
        self._first_line = threading.Event()
        self._process = None
        self._reader = None

    def feed_line(self, line):
        """Parse one line; returns True when it held power rails."""
        rails = parse_tegrastats(line)
        if not rails:
            return False
        label, milliwatts = select_total_rail(rails)
        self.rail, self._latest_w = label, milliwatts / 1000.0
        self.name = "tegrastats:%s" % label
        self._first_line.set()
        return True

    def power_w(self):
        if self._latest_w is None:
            raise PowerReadError("tegrastats: no line with power rails received yet")
        return self._latest_w

    def _begin(self):
        if self.command and self._process is None:
            self._spawn()
        super()._begin()

    def _spawn(self):
        try:
            self._process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                universal_newlines=True)
        except OSError as exc:
            raise PowerReadError(
                "tegrastats: cannot run %s: %s" % (self.command[0], exc)) from exc
        self._reader = threading.Thread(target=self._pump, args=(self._process.stdout,),
                                        name="tegrastats-reader", daemon=True)
        self._reader.start()
        if not self._first_line.wait(self.first_line_timeout_s):
            self.close()
            raise PowerReadError("tegrastats: no power line within %.1f s"
                                 % self.first_line_timeout_s)

    def _pump(self, stream):
        for line in stream:
            self.feed_line(line)

    def close(self):
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # The reader ends at EOF; closing the pipe under it would raise in its thread.
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()


def _detect_tegrastats(root, clock, _device_index):
    path = os.path.join(root, "usr/bin/tegrastats")
    if not os.path.exists(path) and os.path.abspath(root) == os.sep:
        path = shutil.which("tegrastats")
    if not path or not os.path.exists(path):
        return None, "tegrastats: not installed"
    return TegrastatsMeter([path, "--interval", "100"], clock), ""


class NvmlEnergyMeter(CounterMeter):
    """GPU board energy from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ counter)."""

    def __init__(self, nvml, handle, index, clock=time.monotonic):
        super().__init__(
            "nvml:gpu%d (energy counter)" % index, 1e-3, [None], clock)
        self._nvml, self._handle = nvml, handle

    def _read_counters(self):
        try:
            return [self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)]
        except Exception as exc:  # any NVMLError subclass
            raise PowerReadError("%s: %s" % (self.name, exc)) from exc

    def close(self):
        _nvml_shutdown(self._nvml)


class NvmlPowerMeter(SampledMeter):
    """GPU board power sampled from ``nvmlDeviceGetPowerUsage`` (mW)."""

    def __init__(self, nvml, handle, index, clock=time.monotonic):
        super().__init__("nvml:gpu%d (power samples)" % index, clock)
        self._nvml, self._handle = nvml, handle

    def power_w(self):
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except Exception as exc:  # any NVMLError subclass
            raise PowerReadError("%s: %s" % (self.name, exc)) from exc

    def close(self):
        _nvml_shutdown(self._nvml)


def _nvml_shutdown(nvml):
    try:
        nvml.nvmlShutdown()
    except Exception:  # already shut down or driver gone: nothing left to release
        pass


def _detect_nvml(_root, clock, device_index):
    try:
        import pynvml
    except ImportError:
        return None, "nvml: pynvml (nvidia-ml-py) not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return None, "nvml: init failed (%s)" % exc
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
    except Exception as exc:
        _nvml_shutdown(pynvml)
        return None, "nvml: no GPU %d (%s)" % (device_index, exc)
    last_error = None
    for meter_type in (NvmlEnergyMeter, NvmlPowerMeter):
        meter = meter_type(pynvml, handle, device_index, clock)
        try:
            meter.start()
            return meter, ""
        except PowerReadError as exc:
            last_error = exc
    _nvml_shutdown(pynvml)
    return None, "nvml: GPU %d reports no power (%s)" % (device_index, last_error)


class RaplMeter(CounterMeter):
    """CPU energy from powercap RAPL zones (``energy_uj``), handling counter wrap-around."""

    def __init__(self, zones, clock=time.monotonic):
        names = ",".join(name for name, _path, _wrap in zones)
        super().__init__(
            "rapl:%s" % names, 1e-6, [wrap for _name, _path, wrap in zones], clock)
        self._paths = [path for _name, path, _wrap in zones]

    def _read_counters(self):
        try:
            return [int(_read_text(path)) for path in self._paths]
        except (OSError, ValueError) as exc:
            raise PowerReadError("%s: %s" % (self.name, exc)) from exc


def _detect_rapl(root, clock, _device_index):
    base = os.path.join(root, "sys/class/powercap")
    folders = [path for path in glob.glob(os.path.join(base, "intel-rapl:*"))
               if re.match(r"^intel-rapl:\d+$", os.path.basename(path))]
    if not folders:
        return None, "rapl: no powercap intel-rapl zones"
    folders.sort(key=lambda path: int(path.rsplit(":", 1)[1]))
    zones = []
    try:
        for folder in folders:
            name = _read_text(os.path.join(folder, "name"))
            wrap = int(_read_text(os.path.join(folder, "max_energy_range_uj")))
            zones.append((name, os.path.join(folder, "energy_uj"), wrap))
    except (OSError, ValueError) as exc:
        return None, "rapl: %s" % exc
    # Sub-zones (core, uncore, dram) are inside a package; psys would double count packages.
    packages = [zone for zone in zones if zone[0].startswith("package")]
    meter = RaplMeter(packages or zones, clock)
    try:
        meter.start()
    except PowerReadError as exc:
        hint = " (root-only since Linux 5.10)" if "ermission" in str(exc) else ""
        return None, "rapl: cannot read energy_uj%s: %s" % (hint, exc)
    return meter, ""


_DETECTORS = {
    "ina3221_hwmon": _detect_hwmon,
    "ina3221_iio": _detect_iio,
    "tegrastats": _detect_tegrastats,
    "nvml": _detect_nvml,
    "rapl": _detect_rapl,
}


def detect_power_source(root="/", sources=DEFAULT_SOURCES, clock=time.monotonic,
                        nvml_device_index=0):
    """Return the first working meter among ``sources`` (see module doc for the order).

    ``root`` prefixes every file path (sysfs, tegrastats) so tests can use a fake tree; NVML does
    not use files. Returns an ``UnavailablePowerMeter`` listing why each source failed.
    """
    reasons = []
    for source in sources:
        if source not in _DETECTORS:
            raise ValueError("unknown power source %r; known: %s"
                             % (source, ", ".join(DEFAULT_SOURCES)))
        meter, reason = _DETECTORS[source](root, clock, nvml_device_index)
        if meter is not None:
            return meter
        reasons.append(reason)
    return UnavailablePowerMeter("no power source found: " + "; ".join(reasons))


PowerSummary = collections.namedtuple(
    "PowerSummary", "available source average_w joules_per_frame frames window_s reason")
PowerSummary.__doc__ = """Power over the monitor window; None values come with a ``reason``."""

_Sample = collections.namedtuple("_Sample", "time energy_j frames")


class PowerMonitor:
    """Average watts and joules per processed frame over a sliding time window."""

    def __init__(self, meter, window_s=10.0, min_sample_interval_s=0.1, clock=time.monotonic):
        self.meter = meter
        self.window_s = float(window_s)
        self.min_sample_interval_s = float(min_sample_interval_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._samples = collections.deque()
        self._frames = 0
        self._failure = "" if meter.available else meter.reason

    def start(self):
        """Start the meter; failures are kept as the reason the summary reports."""
        with self._lock:
            self._samples.clear()
            if self._failure:
                return
            try:
                self.meter.start()
            except Exception as exc:  # any hardware error must not stop the node
                self._failure = "%s: start failed: %s" % (self.meter.name, exc)
                return
            self._samples.append(_Sample(self._clock(), 0.0, self._frames))

    def frame_done(self, count=1):
        """Count processed frames and take a sample when the last one is old enough."""
        with self._lock:
            self._frames += count
            self._sample(force=False)

    def sample(self):
        """Take a sample now (e.g. from a timer while no frames arrive)."""
        with self._lock:
            self._sample(force=True)

    def _sample(self, force):
        if self._failure or not self._samples:
            return
        now = self._clock()
        if not force and now - self._samples[-1].time < self.min_sample_interval_s:
            return
        try:
            energy = self.meter.read()
        except Exception as exc:  # any hardware error must not stop the node
            self._failure = "%s: read failed: %s" % (self.meter.name, exc)
            return
        self._samples.append(_Sample(now, energy, self._frames))
        # Keep the newest sample at or before the window start as the baseline.
        while len(self._samples) > 2 and self._samples[1].time <= now - self.window_s:
            self._samples.popleft()

    def summary(self):
        """Sample now and summarise the window as a ``PowerSummary``."""
        with self._lock:
            self._sample(force=True)
            source = self.meter.name
            if self._failure:
                return PowerSummary(False, source, None, None, 0, 0.0, self._failure)
            if not self._samples:
                return PowerSummary(False, source, None, None, 0, 0.0, "monitor not started")
            first, last = self._samples[0], self._samples[-1]
            elapsed = last.time - first.time
            frames = last.frames - first.frames
            if elapsed <= 0:
                return PowerSummary(True, source, None, None, frames, 0.0, "collecting samples")
            energy = last.energy_j - first.energy_j
            per_frame = energy / frames if frames > 0 else None
            reason = "" if frames > 0 else "no frames processed in the last %.1f s" % elapsed
            return PowerSummary(True, source, energy / elapsed, per_frame, frames, elapsed,
                                reason)

    def close(self):
        self.meter.close()
