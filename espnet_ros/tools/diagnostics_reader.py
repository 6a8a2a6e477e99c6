"""What the demo, the benchmarks, bag replay and the tests read back from a running node's
/diagnostics."""
import collections
import time

from ..messages.diagnostics import STAGE_KEY, TASK_PIPELINE

__all__ = ["DiagnosticStatusRead", "DiagnosticsReport", "DiagnosticsReader"]

DiagnosticStatusRead = collections.namedtuple("DiagnosticStatusRead",
                                              "level message values hardware_id")
DiagnosticsReport = collections.namedtuple("DiagnosticsReport", "time statuses")


class DiagnosticsReader:
    """The statuses one segment_node publishes on /diagnostics, as they arrive.

    ``feed`` every DiagnosticArray received; each one holding this node's statuses becomes a
    ``DiagnosticsReport(time, {task: DiagnosticStatusRead(level, message, {key: value},
    hardware_id)})``
    in ``reports`` (the newest ``keep``). ``node`` is the node's full name, e.g.
    ``/front/espnet_segmentation``.
    """

    def __init__(self, node, keep=1000, clock=time.monotonic):
        self.prefix = "/" + node.strip("/") + ": "  # the node's full name, as it publishes it
        self.reports = collections.deque(maxlen=keep)
        self._clock = clock

    def feed(self, array_msg):
        """Keeps the node's statuses of ``array_msg``; True when it held any."""
        statuses = {}
        for status in array_msg.status:
            if status.name.startswith(self.prefix):
                level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                statuses[status.name[len(self.prefix):]] = DiagnosticStatusRead(
                    level, status.message, {kv.key: kv.value for kv in status.values},
                    status.hardware_id)
        if statuses:
            self.reports.append(DiagnosticsReport(self._clock(), statuses))
        return bool(statuses)

    def latest(self, task):
        """The newest status of ``task`` (e.g. TASK_PIPELINE), or None."""
        for report in reversed(self.reports):
            if task in report.statuses:
                return report.statuses[task]
        return None

    def find(self, task, accept=lambda status: True):
        """The oldest status of ``task`` for which ``accept(status)`` holds, or None."""
        for report in self.reports:
            status = report.statuses.get(task)
            if status is not None and accept(status):
                return status
        return None

    def value(self, task, key, default=None):
        status = self.latest(task)
        return default if status is None else status.values.get(key, default)

    @staticmethod
    def counters(status):
        """{received, processed, dropped, rejected} of a pipeline status, or None."""
        try:
            return {key: int(status.values["Frames " + key])
                    for key in ("received", "processed", "dropped", "rejected")}
        except (AttributeError, KeyError, ValueError):
            return None

    def stage_p50(self, task=TASK_PIPELINE):
        """{stage: p50 ms} from the newest status of ``task`` (default: the node's pipeline;
        with several cameras, "<camera>: frame pipeline"), stages without samples left out."""
        status = self.latest(task)
        prefix = STAGE_KEY % ""
        stages = {}
        for key, value in (status.values.items() if status else ()):
            if key.startswith(prefix):
                try:
                    stages[key[len(prefix):]] = float(value)
                except ValueError:
                    pass
        return stages
