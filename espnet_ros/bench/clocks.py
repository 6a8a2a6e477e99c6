"""GPU clocks: read them, and pin them for the frequency-sensitivity sweep where allowed.

Jetson: the GPU's devfreq node (``/sys/class/devfreq/<gpu>``: cur_freq, available_frequencies,
min_freq, max_freq in Hz); pinning writes min_freq = max_freq and needs root. Desktop GPUs:
NVML (``pynvml``) graphics clock; pinning uses locked clocks (root, Volta or newer).
``root`` prefixes sysfs paths so tests can use a fake tree.
"""
import glob
import importlib
import os
from pathlib import Path

# devfreq node names of Jetson GPUs: TX1/Nano gm20b, TX2 gp10b, Xavier gv11b, Orin ga10b.
JETSON_GPU_NODES = ("gm20b", "gp10b", "gv11b", "ga10b", "gpu")


class UnavailableClocks:
    available = False
    can_set = False
    source = "unavailable"

    def __init__(self, reason):
        self.reason = reason

    def current_mhz(self):
        return None

    def available_mhz(self):
        return []


class DevfreqClocks:
    """A Jetson GPU devfreq node."""

    available = True
    source = "jetson-devfreq"
    reason = ""

    def __init__(self, node):
        self.node = Path(node)
        self._saved = None

    def _read(self, name):
        return (self.node / name).read_text().strip()

    def current_mhz(self):
        return int(self._read("cur_freq")) / 1e6

    def available_mhz(self):
        try:
            return sorted(int(v) / 1e6 for v in self._read("available_frequencies").split())
        except (OSError, ValueError):
            return []

    @property
    def can_set(self):
        return all(os.access(str(self.node / name), os.W_OK) for name in ("min_freq", "max_freq"))

    def pin_mhz(self, mhz):
        """Sets min = max = ``mhz`` (one of available_mhz); ``restore()`` undoes it."""
        hz = str(int(round(mhz * 1e6)))
        if self._saved is None:
            self._saved = (self._read("min_freq"), self._read("max_freq"))
        # Raise max first when going up, lower min first when going down, so min <= max holds.
        if int(hz) >= int(self._read("max_freq")):
            order = (("max_freq", hz), ("min_freq", hz))
        else:
            order = (("min_freq", hz), ("max_freq", hz))
        for name, value in order:
            (self.node / name).write_text(value)

    def restore(self):
        if self._saved is None:
            return
        low, high = self._saved
        (self.node / "max_freq").write_text(high)
        (self.node / "min_freq").write_text(low)
        self._saved = None


class NvmlClocks:
    """Graphics clock of a desktop GPU through NVML."""

    available = True
    source = "nvml"
    reason = ""

    def __init__(self, nvml, handle):
        self.nvml, self.handle = nvml, handle

    def current_mhz(self):
        return float(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_GRAPHICS))

    def available_mhz(self):
        try:
            memory = self.nvml.nvmlDeviceGetMaxClockInfo(self.handle, self.nvml.NVML_CLOCK_MEM)
            return sorted(float(v) for v in
                          self.nvml.nvmlDeviceGetSupportedGraphicsClocks(self.handle, memory))
        except Exception:  # NVMLError subclasses: not supported on this board
            return []

    @property
    def can_set(self):
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def pin_mhz(self, mhz):
        self.nvml.nvmlDeviceSetGpuLockedClocks(self.handle, int(mhz), int(mhz))

    def restore(self):
        self.nvml.nvmlDeviceResetGpuLockedClocks(self.handle)


def find_devfreq_node(root="/"):
    for path in sorted(glob.glob(os.path.join(root, "sys/class/devfreq/*"))):
        name = os.path.basename(path).lower()
        if any(tag in name for tag in JETSON_GPU_NODES) and \
                os.path.isfile(os.path.join(path, "cur_freq")):
            return path
    return None


def detect_gpu_clocks(root="/", device_index=0, use_nvml=True):
    node = find_devfreq_node(root)
    if node:
        return DevfreqClocks(node)
    reasons = ["no Jetson GPU devfreq node under %s" % os.path.join(root, "sys/class/devfreq")]
    if use_nvml:
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            return NvmlClocks(nvml, nvml.nvmlDeviceGetHandleByIndex(device_index))
        except Exception as exc:  # not installed, no driver, no GPU
            reasons.append("NVML: %s" % (str(exc).splitlines()[0][:80] or type(exc).__name__))
    return UnavailableClocks("; ".join(reasons))


def sweep_points(available_mhz, count=4):
    """Up to ``count`` frequencies spread over the available ones, highest included."""
    values = sorted(set(available_mhz))
    if len(values) <= count:
        return values
    step = (len(values) - 1) / float(count - 1)
    return sorted({values[int(round(i * step))] for i in range(count)})
