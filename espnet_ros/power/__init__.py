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

The package has no ROS dependency: the node, ``espnet-ros bench`` and tests use it alike.
``meters`` holds the meter interface, ``jetson``/``nvml``/``rapl`` the sources, ``monitor``
the sliding-window summary the node's diagnostics report.
"""
import time

from .jetson import (
    RailsMeter,
    TegrastatsMeter,
    detect_hwmon,
    detect_iio,
    detect_tegrastats,
    parse_tegrastats,
    select_total_rail,
)
from .meters import CounterMeter, PowerMeter, PowerReadError, SampledMeter, UnavailablePowerMeter
from .monitor import PowerMonitor, PowerSummary
from .nvml import NvmlEnergyMeter, NvmlPowerMeter, detect_nvml
from .rapl import RaplMeter, detect_rapl

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

_DETECTORS = {
    "ina3221_hwmon": detect_hwmon,
    "ina3221_iio": detect_iio,
    "tegrastats": detect_tegrastats,
    "nvml": detect_nvml,
    "rapl": detect_rapl,
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
