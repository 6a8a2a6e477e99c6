"""Average watts and joules per frame over a sliding window, from any meter."""
import collections
import threading
import time

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
