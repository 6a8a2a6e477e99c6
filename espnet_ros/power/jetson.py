"""Jetson power: INA3221 rails in sysfs (JetPack 5+ hwmon, JetPack 4 iio) and tegrastats."""
import glob
import os
import re
import shutil
import subprocess
import threading
import time

from .meters import PowerReadError, SampledMeter, read_number, read_text

# Rails that carry the whole module's input power.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
# JetPack 4 Xavier AGX rails, printed by tegrastats without a unit or a prefix.
_BARE_RAILS = ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")
_RAIL_PREFIXES = ("VDD_", "POM_", "VIN_")
# "NAME now/avg" with an optional mW unit; the lookahead rejects "RAM 1500/3956MB".
_TEGRASTATS_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?(?=\s|$)")


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
    return lambda: read_number(voltage_path) * read_number(current_path) / 1000.0


def _iio_rail(power_path):
    return lambda: read_number(power_path)


def _ignored_label(label):
    # "NC" marks an unconnected channel; INA3221 also exposes a "sum of shunt voltages" input.
    return not label or label.upper() == "NC" or label.lower().startswith("sum of")


def _find_hwmon_rails(root):
    pattern = os.path.join(root, "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in[123]_label")
    rails = {}
    for label_path in sorted(glob.glob(pattern)):
        label = read_text(label_path)
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
        label = read_text(label_path)
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


def detect_hwmon(root, clock, _device_index):
    try:
        found = _find_hwmon_rails(root)
    except OSError as exc:
        return None, "ina3221_hwmon: %s" % exc
    if not found:
        return None, "ina3221_hwmon: no INA3221 hwmon rails"
    return _rails_meter("ina3221_hwmon", found, clock)


def detect_iio(root, clock, _device_index):
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


class TegrastatsProcess:
    """A running ``tegrastats`` whose output lines go to ``on_line`` (power meter, utilization)."""

    def __init__(self, command, on_line):
        self.command = list(command)
        self.on_line = on_line
        self.process = None
        self._reader = None

    def start(self):
        try:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                universal_newlines=True)
        except OSError as exc:
            raise PowerReadError(
                "tegrastats: cannot run %s: %s" % (self.command[0], exc)) from exc
        self._reader = threading.Thread(target=self._pump, args=(self.process.stdout,),
                                        name="tegrastats-reader", daemon=True)
        self._reader.start()

    def _pump(self, stream):
        for line in stream:
            self.on_line(line)

    def close(self):
        process, self.process = self.process, None
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


def tegrastats_command(root="/", interval_ms=100):
    """``[path, "--interval", ms]`` of the tegrastats under ``root``, or None when absent."""
    path = os.path.join(root, "usr/bin/tegrastats")
    if not os.path.exists(path) and os.path.abspath(root) == os.sep:
        path = shutil.which("tegrastats")
    if not path or not os.path.exists(path):
        return None
    return [path, "--interval", str(int(interval_ms))]


class TegrastatsMeter(SampledMeter):
    """Power from tegrastats lines: fed by ``feed_line`` or by a spawned tegrastats process."""

    def __init__(self, command=None, clock=time.monotonic, first_line_timeout_s=3.0):
        super().__init__("tegrastats", clock)
        self.command = list(command) if command else None
        self.first_line_timeout_s = first_line_timeout_s
        self.rail = None
        self._latest_w = None
        self._first_line = threading.Event()
        self.tegrastats = TegrastatsProcess(self.command, self.feed_line) if command else None

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
        if self.tegrastats is not None and self.tegrastats.process is None:
            self.tegrastats.start()
            if not self._first_line.wait(self.first_line_timeout_s):
                self.close()
                raise PowerReadError("tegrastats: no power line within %.1f s"
                                     % self.first_line_timeout_s)
        super()._begin()

    def close(self):
        if self.tegrastats is not None:
            self.tegrastats.close()


def detect_tegrastats(root, clock, _device_index):
    command = tegrastats_command(root)
    if command is None:
        return None, "tegrastats: not installed"
    return TegrastatsMeter(command, clock), ""
