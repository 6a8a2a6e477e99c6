"""NVIDIA GPU board power through NVML (pynvml / nvidia-ml-py)."""
import time

from .meters import CounterMeter, PowerReadError, SampledMeter


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


def detect_nvml(_root, clock, device_index):
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
