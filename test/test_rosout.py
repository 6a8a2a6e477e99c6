"""Backend fallbacks and start-up failures reach /rosout (rqt_console), not only stderr."""
import logging
import time

import pytest

from espnet_ros.ros import rosout

MODEL = "espnet-p2q3-cityscapes"
SMALL = {"model": MODEL, "input_width": 128, "input_height": 64, "warmup_frames": 1}


class FakeRosLogger:
    def __init__(self):
        self.lines = []

    def __getattr__(self, severity):
        return lambda message: self.lines.append((severity, message))


class FakeNode:
    def __init__(self, logger):
        self.logger = logger

    def get_logger(self):
        return self.logger


def test_library_records_go_to_the_ros_logger_once_at_their_severity():
    library = logging.getLogger("espnet_ros.inference.backends")
    first, ros_logger = FakeRosLogger(), FakeRosLogger()
    handler = rosout.forward_library_logs(FakeNode(first))
    handler = rosout.forward_library_logs(FakeNode(ros_logger))  # the newest node's logger replaces it
    try:
        records = []
        capture = logging.Handler()
        capture.emit = records.append
        library.addHandler(capture)
        library.warning("backend %s is unavailable", "torch2trt")
        library.error("start failed")
        library.removeHandler(capture)
    finally:
        rosout.stop_forwarding(handler)
    assert first.lines == []
    assert ros_logger.lines == [("warning", "backend torch2trt is unavailable"),
                                ("error", "start failed")]
    # The process's stderr handler skips what the ROS logger printed already.
    assert [rosout.NotForwarded().filter(r) for r in records] == [False, False]
    library.warning("after the node")  # no handler left: nothing forwarded
    assert len(ros_logger.lines) == 2


def test_a_failing_ros_logger_leaves_the_record_to_stderr():
    class Broken:
        def warning(self, message):
            raise RuntimeError("rclpy is shut down")
    record = logging.LogRecord("espnet_ros", logging.WARNING, __file__, 1, "late", (), None)
    rosout.RosLoggerHandler(FakeNode(Broken())).emit(record)
    assert rosout.NotForwarded().filter(record)


class CountingNode:
    """count_subscribers answers from a script: 0 until ``matched_after`` calls."""

    def __init__(self, matched_after=None, gone=False):
        self.calls, self.matched_after, self.gone = 0, matched_after, gone

    def get_logger(self):
        return FakeRosLogger()

    def count_subscribers(self, topic):
        assert topic == "/rosout"
        if self.gone:
            raise RuntimeError("node destroyed")
        self.calls += 1
        return int(self.matched_after is not None and self.calls > self.matched_after)


@pytest.mark.parametrize("node, delivered", [
    (CountingNode(matched_after=3), True),  # a reader matched late: waits for it, then the margin
    (CountingNode(), False),  # no reader: gives up after wait_s
    (CountingNode(gone=True), False)])
def test_delivery_waits_for_a_rosout_reader_then_a_margin(node, delivered):
    handler = rosout.forward_library_logs(node)
    try:
        start = time.monotonic()
        assert rosout.deliver_before_exit(wait_s=0.5, margin_s=0.2) is delivered
        took = time.monotonic() - start
    finally:
        rosout.stop_forwarding(handler)
    if delivered:
        assert node.calls == 4 and took >= 0.2
    elif not node.gone:
        assert took >= 0.5 and node.calls > 4


def test_no_forwarding_node_means_nothing_to_deliver():
    assert rosout.deliver_before_exit(wait_s=5.0) is False


@pytest.fixture(scope="module")
def rosout_log():
    """A probe recording /rosout (reliable, transient_local as rcl publishes it)."""
    pytest.importorskip("rclpy")
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosutil import start_probe, stop_probe
    probe = start_probe("espnet_rosout_probe")
    probe.received["/rosout"] = []
    probe.node.create_subscription(
        Log, "/rosout", lambda msg: probe.received["/rosout"].append((0, msg)),
        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    yield probe
    stop_probe(probe)


def _lines(probe, name, text):
    return [m for m in probe.messages("/rosout") if m.name == name and text in m.msg]


def test_backend_fallback_is_a_rosout_warning(rosout_log, tmp_path):
    from rcl_interfaces.msg import Log
    from rosutil import NodeProcess
    node = NodeProcess("/rosout_fallback", dict(SMALL, backend="torch2trt"), tmp_path)
    try:
        name = "rosout_fallback.espnet_segmentation"
        assert rosout_log.spin_until(lambda: _lines(rosout_log, name, "falling back to"), 180), \
            node.log()
        warning = _lines(rosout_log, name, "falling back to")[0]
        assert warning.level == Log.WARN and "torch2trt" in warning.msg, warning
        assert node.proc.poll() is None, node.log()  # it serves on the fallback
    finally:
        node.stop()
    assert node.log().count("falling back to") == 1, node.log()  # printed once, not twice


def test_start_up_failure_is_a_rosout_error(rosout_log, tmp_path):
    from rcl_interfaces.msg import Log
    from rosutil import NodeProcess
    node = NodeProcess("/rosout_fail", dict(SMALL, backend="torch2trt", allow_fallback=False),
                       tmp_path)
    name = "rosout_fail.espnet_segmentation"
    end = time.monotonic() + 180
    while node.proc.poll() is None and time.monotonic() < end:
        rosout_log.spin_until(lambda: False, 0.2)
    assert node.proc.returncode == 1, node.log()
    assert rosout_log.spin_until(lambda: _lines(rosout_log, name, "failed to start"), 10), \
        node.log()
    error = _lines(rosout_log, name, "failed to start")[0]
    assert error.level == Log.ERROR and "torch2trt" in error.msg, error
    assert node.log().count("failed to start") == 1, node.log()
