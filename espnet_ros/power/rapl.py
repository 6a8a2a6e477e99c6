"""Intel/AMD CPU package energy from the powercap RAPL counters."""
import glob
import os
import re
import time

from .meters import CounterMeter, PowerReadError, read_text


class RaplMeter(CounterMeter):
    """CPU energy from powercap RAPL zones (``energy_uj``), handling counter wrap-around."""

    def __init__(self, zones, clock=time.monotonic):
        names = ",".join(name for name, _path, _wrap in zones)
        super().__init__(
            "rapl:%s" % names, 1e-6, [wrap for _name, _path, wrap in zones], clock)
        self._paths = [path for _name, path, _wrap in zones]

    def _read_counters(self):
        try:
            return [int(read_text(path)) for path in self._paths]
        except (OSError, ValueError) as exc:
            raise PowerReadError("%s: %s" % (self.name, exc)) from exc


def detect_rapl(root, clock, _device_index):
    base = os.path.join(root, "sys/class/powercap")
    folders = [path for path in glob.glob(os.path.join(base, "intel-rapl:*"))
               if re.match(r"^intel-rapl:\d+$", os.path.basename(path))]
    if not folders:
        return None, "rapl: no powercap intel-rapl zones"
    folders.sort(key=lambda path: int(path.rsplit(":", 1)[1]))
    zones = []
    try:
        for folder in folders:
            name = read_text(os.path.join(folder, "name"))
            wrap = int(read_text(os.path.join(folder, "max_energy_range_uj")))
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
