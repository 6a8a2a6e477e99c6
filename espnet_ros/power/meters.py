"""Energy meters: the interface every power source implements, and its two shapes.

A meter reports joules since ``start()``. Hardware gives either an energy counter
(``CounterMeter``: RAPL, NVML's total-energy counter) or instantaneous power
(``SampledMeter``: Jetson rails, tegrastats, NVML power samples), which is integrated here.
"""
import time


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


def read_number(path):
    with open(path) as handle:
        return float(handle.read().strip())


def read_text(path):
    with open(path) as handle:
        return handle.read().strip()
