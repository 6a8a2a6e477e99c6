"""Diagnostics for the segmentation node, following ROS diagnostic_updater's conventions.

``FrequencyStatus`` and ``TimestampStatus`` reproduce diagnostic_updater's tasks of the same
names (levels, messages, keys and the once-per-period ``run`` that resets them) without rclpy.
``pipeline_status`` and ``model_status`` turn the frame counters, latency percentiles, per-stage
times, model information and power readings into the node's two other tasks. The fallback
updater (``ros/diagnostics_fallback.py``) publishes them as ``StatusRecord``s named
``"<node name>: <task>"``; ``to_diagnostic_array`` converts records to ``diagnostic_msgs``
lazily. The reading end is ``espnet_ros.tools.diagnostics_reader``.
"""
import collections
import math
import threading
import time

__all__ = [
    "OK", "WARN", "ERROR", "STALE",
    "TASK_OUTPUT", "TASK_PIPELINE", "TASK_MODEL",
    "TaskStatus", "StatusRecord", "CounterPeriod",
    "merge_summary",
    "fill_status",
    "FrequencyStatus",
    "TimestampStatus",
    "RollingPercentiles",
    "FrameCounters",
    "pipeline_status",
    "model_status",
    "to_diagnostic_array",
    "STAGE_KEY",
]

OK, WARN, ERROR, STALE = 0, 1, 2, 3

TASK_OUTPUT = "segmentation output"
TASK_PIPELINE = "frame pipeline"
TASK_MODEL = "model and power"

# Key of a stage's p50 in the pipeline task, e.g. "Stage p50 (ms): decode".
STAGE_KEY = "Stage p50 (ms): %s"

TaskStatus = collections.namedtuple("TaskStatus", "level message values")
StatusRecord = collections.namedtuple("StatusRecord", "name level message hardware_id values")
CounterPeriod = collections.namedtuple(
    "CounterPeriod", "received processed dropped rejected last_rejection_reason")


def merge_summary(level, message, new_level, new_message):
    """Combine two summaries as DiagnosticStatusWrapper.mergeSummary does."""
    if (new_level > 0) == (level > 0):
        message = "%s; %s" % (message, new_message) if message else new_message
    elif new_level > level:
        message = new_message
    return max(level, new_level), message


def fill_status(stat, status):
    """Writes a ``TaskStatus`` into a DiagnosticStatusWrapper (diagnostic_updater's, or the
    fallback's): the level as the byte diagnostic_msgs carries, the message, the values."""
    level = bytes([status.level]) if isinstance(status.level, int) else status.level
    stat.summary(level, status.message)
    for key, value in status.values:
        stat.add(str(key), str(value))
    return stat


class FrequencyStatus:
    """Rate of ``tick()`` events over the last ``window_size`` calls of ``run()``.

    ``max_freq`` None means no upper bound. Like diagnostic_updater, acceptable rates are
    ``min_freq * (1 - tolerance)`` to ``max_freq * (1 + tolerance)``.
    """

    def __init__(self, min_freq=0.0, max_freq=None, tolerance=0.1, window_size=5,
                 clock=time.monotonic):
        if window_size < 1:
            raise ValueError("window_size must be at least 1, got %r" % (window_size,))
        self.min_freq = float(min_freq)
        self.max_freq = None if max_freq is None else float(max_freq)
        self.tolerance = float(tolerance)
        self.window_size = int(window_size)
        self._clock = clock
        self._lock = threading.Lock()
        self.clear()

    def clear(self, now=None):
        with self._lock:
            now = self._clock() if now is None else now
            self.count = 0
            self._times = [now] * self.window_size
            self._counts = [0] * self.window_size
            self._index = 0

    def tick(self):
        with self._lock:
            self.count += 1

    def run(self, now=None):
        """Report and advance the window; call once per diagnostic period."""
        with self._lock:
            now = self._clock() if now is None else now
            events = self.count - self._counts[self._index]
            window = now - self._times[self._index]
            freq = events / window if window > 0 else 0.0
            self._counts[self._index] = self.count
            self._times[self._index] = now
            self._index = (self._index + 1) % self.window_size
            count = self.count

        low = self.min_freq * (1 - self.tolerance)
        high = None if self.max_freq is None else self.max_freq * (1 + self.tolerance)
        if events == 0:
            level, message = ERROR, "No events recorded."
        elif freq < low:
            level, message = WARN, "Frequency too low."
        elif high is not None and freq > high:
            level, message = WARN, "Frequency too high."
        else:
            level, message = OK, "Desired frequency met"
        values = [
            ("Events in window", "%d" % events),
            ("Events since startup", "%d" % count),
            ("Duration of window (s)", "%f" % window),
            ("Actual frequency (Hz)", "%f" % freq),
        ]
        if self.max_freq is not None and self.min_freq == self.max_freq:
            values.append(("Target frequency (Hz)", "%f" % self.min_freq))
        if self.min_freq > 0:
            values.append(("Minimum acceptable frequency (Hz)", "%f" % low))
        if high is not None and not math.isinf(high):
            values.append(("Maximum acceptable frequency (Hz)", "%f" % high))
        return TaskStatus(level, message, values)


class TimestampStatus:
    """Delay between message stamps and now, checked against acceptable bounds per period.

    Delay is ``now - stamp`` in seconds: negative means the stamp is in the future.
    """

    def __init__(self, min_acceptable=-1.0, max_acceptable=5.0, clock=time.time):
        self.min_acceptable = float(min_acceptable)
        self.max_acceptable = float(max_acceptable)
        self._clock = clock
        self._lock = threading.Lock()
        self.early_count = self.late_count = self.zero_count = 0
        self._reset_period()

    def _reset_period(self):
        self._zero_seen = False
        self._valid = False
        self.min_delay = self.max_delay = 0.0

    def tick(self, stamp_sec, now_sec=None):
        with self._lock:
            if stamp_sec == 0:
                self._zero_seen = True
                return
            now_sec = self._clock() if now_sec is None else now_sec
            delay = now_sec - stamp_sec
            if not self._valid or delay > self.max_delay:
                self.max_delay = delay
            if not self._valid or delay < self.min_delay:
                self.min_delay = delay
            self._valid = True

    def run(self):
        """Report the delays seen since the previous ``run`` and start a new period."""
        with self._lock:
            level, message = OK, "Timestamps are reasonable."
            if not self._valid:
                level, message = WARN, "No data since last update."
            else:
                # Later checks overwrite earlier ones, as in diagnostic_updater.
                if self.min_delay < self.min_acceptable:
                    level, message = ERROR, "Timestamps too far in future seen."
                    self.early_count += 1
                if self.max_delay > self.max_acceptable:
                    level, message = ERROR, "Timestamps too far in past seen."
                    self.late_count += 1
                if self._zero_seen:
                    level, message = ERROR, "Zero timestamp seen."
                    self.zero_count += 1
            values = [
                ("Earliest timestamp delay:", "%f" % self.min_delay),
                ("Latest timestamp delay:", "%f" % self.max_delay),
                ("Earliest acceptable timestamp delay:", "%f" % self.min_acceptable),
                ("Latest acceptable timestamp delay:", "%f" % self.max_acceptable),
                ("Late diagnostic update count:", "%i" % self.late_count),
                ("Early diagnostic update count:", "%i" % self.early_count),
                ("Zero seen diagnostic update count:", "%i" % self.zero_count),
            ]
            self._reset_period()
        return TaskStatus(level, message, values)


class RollingPercentiles:
    """Percentiles over the last ``size`` samples (linear interpolation, like numpy's default)."""

    def __init__(self, size=300):
        if size < 1:
            raise ValueError("size must be at least 1, got %r" % (size,))
        self._samples = collections.deque(maxlen=int(size))
        self._lock = threading.Lock()

    def add(self, value):
        with self._lock:
            self._samples.append(float(value))

    def clear(self):
        with self._lock:
            self._samples.clear()

    def __len__(self):
        return len(self._samples)

    def percentile(self, q):
        """The ``q``-th percentile (0..100) of the window, or None when it is empty."""
        return self.percentiles(q)[0]

    def percentiles(self, *qs):
        with self._lock:
            ordered = sorted(self._samples)
        results = []
        for q in qs:
            if not 0 <= q <= 100:
                raise ValueError("percentile must be within 0..100, got %r" % (q,))
            if not ordered:
                results.append(None)
                continue
            position = (len(ordered) - 1) * q / 100.0
            below = int(math.floor(position))
            above = min(below + 1, len(ordered) - 1)
            fraction = position - below
            results.append(ordered[below] + (ordered[above] - ordered[below]) * fraction)
        return results


class FrameCounters:
    """Totals of frames received, processed, dropped and rejected (with per-reason counts)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.received = self.processed = self.dropped = self.rejected = 0
        self.rejected_by_reason = collections.Counter()
        self.last_rejection_reason = ""
        self._marks = (0, 0, 0, 0)
        self._period_reason = ""

    def frame_received(self, count=1):
        with self._lock:
            self.received += count

    def frame_processed(self, count=1):
        with self._lock:
            self.processed += count

    def frame_dropped(self, count=1):
        with self._lock:
            self.dropped += count

    def frame_rejected(self, reason):
        with self._lock:
            self.rejected += 1
            self.rejected_by_reason[reason] += 1
            self.last_rejection_reason = self._period_reason = reason

    def take_period(self):
        """Counts since the previous call (the last diagnostic period) as a ``CounterPeriod``."""
        with self._lock:
            totals = (self.received, self.processed, self.dropped, self.rejected)
            deltas = [now - before for now, before in zip(totals, self._marks)]
            reason, self._period_reason = self._period_reason, ""
            self._marks = totals
        return CounterPeriod(*(deltas + [reason]))


def _format_ms(value):
    return "no samples" if value is None else "%.1f" % value


def _format_input_size(input_size):
    if isinstance(input_size, (tuple, list)):
        return "x".join(str(part) for part in input_size)
    return str(input_size) if input_size else "unknown"


def pipeline_status(counters, inference_ms, latency_ms, max_latency_ms, stage_p50=None,
                    extra_values=()):
    period = counters.take_period()
    level, message = OK, ""
    if period.received == 0:
        level, message = merge_summary(level, message, WARN,
                                       "No frames received in last period.")
    elif period.processed == 0:
        level, message = merge_summary(
            level, message, ERROR,
            "No frames processed: %d received in last period." % period.received)
    if period.rejected:
        level, message = merge_summary(
            level, message, WARN, "%d frames rejected in last period (last: %s)."
            % (period.rejected, period.last_rejection_reason))
    none = [None, None]
    inference = none if inference_ms is None else inference_ms.percentiles(50, 95)
    latency = none if latency_ms is None else latency_ms.percentiles(50, 95)
    if max_latency_ms is not None and latency[1] is not None and latency[1] > max_latency_ms:
        level, message = merge_summary(
            level, message, WARN, "End-to-end latency p95 %.1f ms above %.1f ms."
            % (latency[1], max_latency_ms))
    if not message:
        message = "Processing frames."
    values = [
        ("Frames received", "%d" % counters.received),
        ("Frames processed", "%d" % counters.processed),
        ("Frames dropped", "%d" % counters.dropped),
        ("Frames rejected", "%d" % counters.rejected),
    ]
    for reason, count in sorted(counters.rejected_by_reason.items()):
        values.append(("Frames rejected: %s" % reason, "%d" % count))
    if counters.last_rejection_reason:
        values.append(("Last rejection reason", counters.last_rejection_reason))
    values.extend([
        ("Inference p50 (ms)", _format_ms(inference[0])),
        ("Inference p95 (ms)", _format_ms(inference[1])),
        ("End-to-end latency p50 (ms)", _format_ms(latency[0])),
        ("End-to-end latency p95 (ms)", _format_ms(latency[1])),
    ])
    for stage, value in (stage_p50 or {}).items():
        values.append((STAGE_KEY % stage, _format_ms(value)))
    values.extend(extra_values)
    return TaskStatus(level, message, values)


def _power_values(power):
    """Watts and joules per frame as text, or 'unavailable: <reason>' when there is no number."""
    if power is None:
        return "unavailable: no power monitor", "unavailable: no power monitor", "none"
    reason = power.reason or "no reading"
    watts = ("%.3f" % power.average_w if power.available and power.average_w is not None
             else "unavailable: %s" % reason)
    joules = ("%.4f" % power.joules_per_frame
              if power.available and power.joules_per_frame is not None
              else "unavailable: %s" % reason)
    return watts, joules, power.source


def model_status(backend, precision, model, input_size, power):
    watts, joules, source = _power_values(power)
    message = "%s %s" % (backend or "unknown backend", precision or "unknown precision")
    message += ", power unavailable" if watts.startswith("unavailable") else ", %s W" % watts
    values = [
        ("Backend", backend or "unknown"),
        ("Precision", precision or "unknown"),
        ("Model", model or "unknown"),
        ("Input size", _format_input_size(input_size)),
        ("Average power (W)", watts),
        ("Energy per frame (J)", joules),
        ("Power source", source),
    ]
    return TaskStatus(OK, message, values)


def _stamp_msg(stamp):
    if hasattr(stamp, "to_msg"):  # rclpy.time.Time
        return stamp.to_msg()
    if isinstance(stamp, (int, float)):
        from builtin_interfaces.msg import Time

        # Split before scaling: stamp * 1e9 exceeds float precision for epoch times.
        seconds = int(math.floor(stamp))
        nanoseconds = int(round((stamp - seconds) * 1e9))
        seconds, nanoseconds = seconds + nanoseconds // 10 ** 9, nanoseconds % 10 ** 9
        return Time(sec=seconds, nanosec=nanoseconds)
    return stamp  # already a builtin_interfaces/Time


def to_diagnostic_array(records, stamp):
    """Build a ``diagnostic_msgs/DiagnosticArray``; ``stamp`` is a Time msg, rclpy Time or s."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    array = DiagnosticArray()
    array.header.stamp = _stamp_msg(stamp)
    for record in records:
        array.status.append(DiagnosticStatus(
            level=bytes([record.level]), name=record.name, message=record.message,
            hardware_id=record.hardware_id,
            values=[KeyValue(key=key, value=value) for key, value in record.values]))
    return array
