"""The project's diagnostics against ROS's diagnostic_updater, on the same inputs.

The node publishes through diagnostic_updater where it imports and through its fallback
(espnet_ros.ros.diagnostics_fallback, on espnet_ros.messages.diagnostics) elsewhere; both must
give the same statuses (names, levels, messages, keys and values) so that monitoring set up on
one machine works on the other.
"""
import time

import pytest

du = pytest.importorskip("diagnostic_updater", reason="diagnostic_updater is not installed")
rclpy = pytest.importorskip("rclpy")

from espnet_ros.messages import diagnostics as D  # noqa: E402


class FakeRosClock:
    """Stands in for rclpy's Clock inside diagnostic_updater, driven by the test."""
    now_s = 1000.0

    def __init__(self, clock_type=None):
        pass

    def now(self):
        from rclpy.time import Time
        return Time(nanoseconds=int(round(FakeRosClock.now_s * 1e9)))


@pytest.fixture
def fake_clock(monkeypatch):
    from diagnostic_updater import _update_functions
    monkeypatch.setattr(_update_functions, "Clock", FakeRosClock)
    FakeRosClock.now_s = 1000.0
    return FakeRosClock


def _theirs(task):
    stat = du.DiagnosticStatusWrapper()
    stat = task.run(stat)
    return stat.level[0], stat.message, [(kv.key, kv.value) for kv in stat.values]


def _ours(status):
    return status.level, status.message, list(status.values)


@pytest.mark.parametrize("bounds", [{"min": 5.0}, {"min": 5.0, "max": 8.0},
                                    {"min": 6.0, "max": 6.0}, {"min": 0.0}])
def test_frequency_status_matches_the_library(fake_clock, bounds):
    theirs = du.FrequencyStatus(du.FrequencyStatusParam(dict(bounds), 0.1, 5))
    ours = D.FrequencyStatus(bounds["min"], bounds.get("max"), 0.1, 5,
                             clock=lambda: fake_clock.now_s)
    # Per 1 s period: 0 events (error), then 6, 3 (too low), 12 (too high where bounded) ...
    for events in (0, 6, 6, 3, 12, 12, 12, 0, 5):
        for _ in range(events):
            theirs.tick()
            ours.tick()
        fake_clock.now_s += 1.0
        assert _ours(ours.run()) == _theirs(theirs), (bounds, events)


def test_timestamp_status_matches_the_library(fake_clock):
    theirs = du.TimeStampStatus(du.TimeStampStatusParam(-1.0, 0.5))
    ours = D.TimestampStatus(-1.0, 0.5, clock=lambda: fake_clock.now_s)
    for delays in ((), (0.1, 0.2), (0.1, 0.9), (-2.0, 0.1), (0.3,)):
        for delay in delays:
            theirs.tick(fake_clock.now_s - delay)
            ours.tick(fake_clock.now_s - delay)
        assert _ours(ours.run()) == _theirs(theirs), delays
    theirs.tick(0.0)
    ours.tick(0.0)
    theirs.tick(fake_clock.now_s - 0.1)
    ours.tick(fake_clock.now_s - 0.1)
    assert _ours(ours.run()) == _theirs(theirs)  # a zero stamp is an error in both


@pytest.mark.parametrize("levels", [(0, 0), (0, 1), (1, 0), (1, 2), (2, 2), (0, 2)])
def test_merged_summaries_match_the_composite_task(levels):
    statuses = [D.TaskStatus(level, "message %d" % i, [("k%d" % i, "v")])
                for i, level in enumerate(levels)]

    def task(status):
        return du.FunctionDiagnosticTask("t", lambda stat: (stat.summary(bytes([status.level]),
                                                                         status.message), stat)[1])
    composite = du.CompositeDiagnosticTask("c")
    for status in statuses:
        composite.addTask(task(status))
    level, message = D.OK, ""
    for status in statuses:
        level, message = D.merge_summary(level, message, status.level, status.message)
    theirs = _theirs(composite)
    assert (level, message) == theirs[:2]


def _published(use_library, namespace):
    """The statuses NodeDiagnostics publishes for fixed inputs, through one implementation."""
    from diagnostic_msgs.msg import DiagnosticArray

    from espnet_ros.ros.node_diagnostics import NodeDiagnostics
    node = rclpy.create_node("espnet_segmentation", namespace=namespace)
    probe = rclpy.create_node("espnet_diag_probe")
    got = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", got.append, 50)
    pipeline = D.TaskStatus(D.WARN, "2 frames rejected in last period (last: truncated data).",
                            [("Frames received", "4"), ("Stage p50 (ms): decode", "0.5")])
    model = D.TaskStatus(D.OK, "torch fp32, power unavailable", [("Backend", "torch")])
    diagnostics = NodeDiagnostics(node, lambda: pipeline, lambda: model, lambda: "espnet_ros/cpu",
                                  1.0, 0.0, 1.0, use_library=use_library)
    assert diagnostics.implementation == ("diagnostic_updater" if use_library
                                          else "espnet_ros.ros.diagnostics_fallback")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    end = time.monotonic() + 20
    statuses = {}
    while time.monotonic() < end and len(statuses) < 3:
        executor.spin_once(timeout_sec=0.1)
        for array in got:
            for status in array.status:
                # Only this node's statuses (other processes may publish /diagnostics), and
                # not the Updater's first announcement.
                if status.name.startswith(namespace + "/") \
                        and status.message != "Node starting up":
                    statuses[status.name] = (status.level, status.message, status.hardware_id,
                                             [kv.key for kv in status.values],
                                             [kv.value for kv in status.values
                                              if not kv.key.startswith(("Duration", "Actual"))])
    executor.shutdown()
    node.destroy_node()
    probe.destroy_node()
    return statuses


def test_the_node_publishes_the_same_statuses_with_or_without_the_library():
    from espnet_ros.ros.env import apply_localhost_env
    apply_localhost_env()
    rclpy.init()
    try:
        theirs = _published(True, "/parity_a")
        ours = _published(False, "/parity_b")
    finally:
        rclpy.shutdown()
    assert sorted(theirs) == ["/parity_a/espnet_segmentation: %s" % t
                              for t in (D.TASK_PIPELINE, D.TASK_MODEL, D.TASK_OUTPUT)]
    renamed = {name.replace("/parity_a/", "/parity_b/"): status for name, status in theirs.items()}
    assert renamed == ours
    output = ours["/parity_b/espnet_segmentation: " + D.TASK_OUTPUT]
    assert output[0] == b"\x02" and output[1] == "No events recorded.; No data since last update."
