"""The part of diagnostic_updater's API that node_diagnostics uses, for pip installs without it.

Where diagnostic_updater imports (a ROS install, or the ROS 2 wheels) the node uses the library
and nothing here runs. Without it these classes stand in under the same names: the statuses
are computed by ``messages.diagnostics`` (``FrequencyStatus``, ``TimestampStatus``,
``merge_summary``), which test_diagnostics_parity.py checks against the library on the same
inputs, and the ``Updater`` publishes them once a period as the library's does (without its
"Node starting up" announcement and its own parameters).
"""
import time

from ..messages import diagnostics as D


def _level(level):
    return level[0] if isinstance(level, bytes) else int(level)


class DiagnosticStatusWrapper:
    """One status being filled: ``summary``, ``mergeSummary`` and ``add`` as the library's."""

    def __init__(self, name="", hardware_id=""):
        self.name, self.hardware_id = name, hardware_id
        self.level, self.message, self.values = D.ERROR, "No message was set", []

    def summary(self, level, message):
        self.level, self.message = _level(level), str(message)

    def mergeSummary(self, level, message):
        self.level, self.message = D.merge_summary(self.level, self.message, _level(level),
                                                   message)

    def add(self, key, value):
        self.values.append((str(key), str(value)))


class FrequencyStatusParam:
    def __init__(self, freq_bound, tolerance=0.1, window_size=5):
        self.freq_bound, self.tolerance, self.window_size = freq_bound, tolerance, window_size


class TimeStampStatusParam:
    def __init__(self, min_acceptable=-1, max_acceptable=5):
        self.min_acceptable, self.max_acceptable = min_acceptable, max_acceptable


class FrequencyStatus:
    """Rate of ``tick()``s; the bounds are read from ``params.freq_bound`` at every run."""

    def __init__(self, params):
        self.params = params
        self._status = D.FrequencyStatus(0.0, None, params.tolerance, params.window_size)

    def tick(self):
        self._status.tick()

    def run(self, stat):
        bound = self.params.freq_bound
        self._status.min_freq = float(bound.get("min", 0.0))
        self._status.max_freq = float(bound["max"]) if "max" in bound else None
        return D.fill_status(stat, self._status.run())


class TimeStampStatus:
    """Delay of ticked stamps (seconds) against the system clock, as the library measures it."""

    def __init__(self, params):
        self.params = params
        self._status = D.TimestampStatus(params.min_acceptable, params.max_acceptable,
                                         clock=time.time)

    def tick(self, stamp_s):
        self._status.tick(stamp_s)

    def run(self, stat):
        self._status.min_acceptable = float(self.params.min_acceptable)
        self._status.max_acceptable = float(self.params.max_acceptable)
        return D.fill_status(stat, self._status.run())


class CompositeDiagnosticTask:
    """Sub-tasks run on one status: values concatenated, summaries merged."""

    def __init__(self, name):
        self.name, self.tasks = name, []

    def addTask(self, task):
        self.tasks.append(task)

    def run(self, stat):
        level, message = D.OK, ""
        for task in self.tasks:
            stat = task.run(stat)
            level, message = D.merge_summary(level, message, stat.level, stat.message)
        stat.summary(level, message)
        return stat


class _FunctionTask:
    def __init__(self, name, fn):
        self.name, self.run = name, fn


class Updater:
    """Runs the tasks once a ``period`` and publishes them on /diagnostics, each named
    ``"<node_name>: <task>"``."""

    def __init__(self, node, period=1.0):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node, self.node_name, self.hwid, self.tasks = node, node.get_name(), "", []
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(period, self.update)

    def setHardwareID(self, hwid):
        self.hwid = hwid

    def add(self, task, fn=None):
        self.tasks.append(task if fn is None else _FunctionTask(task, fn))

    def update(self):
        records = []
        for task in self.tasks:
            stat = task.run(DiagnosticStatusWrapper(task.name, self.hwid))
            records.append(D.StatusRecord("%s: %s" % (self.node_name, stat.name), stat.level,
                                          stat.message, stat.hardware_id, list(stat.values)))
        self._publisher.publish(D.to_diagnostic_array(records, self.node.get_clock().now()))
