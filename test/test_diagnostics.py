"""Tests for espnet_ros.messages.diagnostics (and the reader in tools/) with injected clocks."""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from espnet_ros.messages.diagnostics import (
    ERROR,
    OK,
    STALE,
    TASK_MODEL,
    TASK_PIPELINE,
    WARN,
    FrameCounters,
    FrequencyStatus,
    RollingPercentiles,
    StatusRecord,
    TimestampStatus,
    merge_summary,
    model_status,
    pipeline_status,
    to_diagnostic_array,
)
from espnet_ros.power import PowerSummary


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_levels_match_diagnostic_msgs_values():
    assert (OK, WARN, ERROR, STALE) == (0, 1, 2, 3)


# ---------------------------------------------------------------- FrequencyStatus


def run_period(status, clock, ticks, seconds=1.0):
    for _ in range(ticks):
        status.tick()
    clock.now += seconds
    return status.run()


def test_frequency_met_and_keys():
    clock = FakeClock()
    status = FrequencyStatus(min_freq=10.0, max_freq=10.0, clock=clock)
    result = run_period(status, clock, 10)
    assert (result.level, result.message) == (OK, "Desired frequency met")
    assert result.values == [
        ("Events in window", "10"),
        ("Events since startup", "10"),
        ("Duration of window (s)", "1.000000"),
        ("Actual frequency (Hz)", "10.000000"),
        ("Target frequency (Hz)", "10.000000"),
        ("Minimum acceptable frequency (Hz)", "9.000000"),
        ("Maximum acceptable frequency (Hz)", "11.000000"),
    ]


@pytest.mark.parametrize("ticks, level, message", [
    (0, ERROR, "No events recorded."),
    (8, WARN, "Frequency too low."),
    (9, OK, "Desired frequency met"),  # exactly at min * (1 - tolerance)
    (11, OK, "Desired frequency met"),  # exactly at max * (1 + tolerance)
    (12, WARN, "Frequency too high."),
])
def test_frequency_levels(ticks, level, message):
    clock = FakeClock()
    status = FrequencyStatus(min_freq=10.0, max_freq=10.0, tolerance=0.1, clock=clock)
    result = run_period(status, clock, ticks)
    assert (result.level, result.message) == (level, message)


def test_frequency_without_upper_bound_never_too_high():
    clock = FakeClock()
    status = FrequencyStatus(min_freq=5.0, clock=clock)
    result = run_period(status, clock, 1000)
    assert result.message == "Desired frequency met"
    keys = [key for key, _ in result.values]
    assert "Maximum acceptable frequency (Hz)" not in keys
    assert "Target frequency (Hz)" not in keys
    assert FrequencyStatus(max_freq=float("inf"), clock=clock).run().values[-1][0] == \
        "Actual frequency (Hz)"


def test_frequency_window_spans_the_last_window_size_runs():
    clock = FakeClock()
    status = FrequencyStatus(min_freq=1.0, window_size=3, clock=clock)
    assert run_period(status, clock, 30).values[3] == ("Actual frequency (Hz)", "30.000000")
    second = run_period(status, clock, 0)  # window now covers 2 s with 30 events
    assert second.values[0] == ("Events in window", "30")
    assert second.values[3] == ("Actual frequency (Hz)", "15.000000")
    third = run_period(status, clock, 0)
    assert third.values[2] == ("Duration of window (s)", "3.000000")
    fourth = run_period(status, clock, 0)  # the busy first second has left the window
    assert (fourth.level, fourth.message) == (ERROR, "No events recorded.")
    assert fourth.values[1] == ("Events since startup", "30")


def test_frequency_clear_and_zero_length_window():
    clock = FakeClock()
    status = FrequencyStatus(min_freq=1.0, clock=clock)
    status.tick()
    status.clear()
    assert status.count == 0
    status.tick()
    result = status.run()  # no time has passed: frequency reported as 0, not a crash
    assert result.values[3] == ("Actual frequency (Hz)", "0.000000")
    assert result.message == "Frequency too low."


def test_frequency_explicit_now():
    status = FrequencyStatus(min_freq=1.0, clock=FakeClock(0.0))
    status.tick()
    status.tick()
    assert status.run(now=4.0).values[3] == ("Actual frequency (Hz)", "0.500000")


def test_frequency_rejects_empty_window():
    with pytest.raises(ValueError):
        FrequencyStatus(window_size=0)


# ---------------------------------------------------------------- TimestampStatus


def test_timestamps_reasonable_with_keys():
    clock = FakeClock(50.0)
    status = TimestampStatus(clock=clock)
    status.tick(49.5)
    status.tick(49.9)
    result = status.run()
    assert (result.level, result.message) == (OK, "Timestamps are reasonable.")
    assert result.values == [
        ("Earliest timestamp delay:", "0.100000"),
        ("Latest timestamp delay:", "0.500000"),
        ("Earliest acceptable timestamp delay:", "-1.000000"),
        ("Latest acceptable timestamp delay:", "5.000000"),
        ("Late diagnostic update count:", "0"),
        ("Early diagnostic update count:", "0"),
        ("Zero seen diagnostic update count:", "0"),
    ]


@pytest.mark.parametrize("stamps, level, message", [
    ([], WARN, "No data since last update."),
    ([12.0], ERROR, "Timestamps too far in future seen."),
    ([4.0], ERROR, "Timestamps too far in past seen."),
    ([12.0, 4.0], ERROR, "Timestamps too far in past seen."),  # the later check wins
    ([9.5, 0], ERROR, "Zero timestamp seen."),
])
def test_timestamp_levels(stamps, level, message):
    status = TimestampStatus(min_acceptable=-1.0, max_acceptable=5.0)
    for stamp in stamps:
        status.tick(stamp, now_sec=10.0)
    result = status.run()
    assert (result.level, result.message) == (level, message)


def test_timestamp_counts_persist_and_period_resets():
    status = TimestampStatus(max_acceptable=1.0)
    status.tick(0.0, now_sec=3.0)  # zero stamp alone: no delay data
    assert status.run().message == "No data since last update."
    status.tick(1.0, now_sec=3.0)
    late = status.run()
    assert late.message == "Timestamps too far in past seen."
    assert ("Late diagnostic update count:", "1") in late.values
    status.tick(2.5, now_sec=3.0)
    again = status.run()
    assert again.message == "Timestamps are reasonable."
    assert ("Late diagnostic update count:", "1") in again.values
    assert again.values[1] == ("Latest timestamp delay:", "0.500000")


# ---------------------------------------------------------------- percentiles and counters


def test_percentiles_match_numpy_linear():
    window = RollingPercentiles(size=100)
    samples = [13.0, 2.0, 7.5, 40.0, 1.0, 22.0, 9.0]
    for value in samples:
        window.add(value)
    for q in (0, 5, 50, 90, 95, 100):
        assert window.percentile(q) == pytest.approx(np.percentile(samples, q))


def test_percentiles_keep_only_the_last_samples():
    window = RollingPercentiles(size=10)
    for value in range(1000):
        window.add(value)
    assert len(window) == 10
    p50, p95 = window.percentiles(50, 95)
    assert p50 == pytest.approx(994.5) and p95 == pytest.approx(998.55)
    window.clear()
    assert window.percentiles(50, 95) == [None, None]


def test_percentiles_validate_inputs():
    with pytest.raises(ValueError):
        RollingPercentiles(size=0)
    with pytest.raises(ValueError):
        RollingPercentiles().percentile(101)


def test_counters_totals_and_periods():
    counters = FrameCounters()
    counters.frame_received(5)
    counters.frame_processed(3)
    counters.frame_dropped()
    counters.frame_rejected("unsupported encoding 'nv12'")
    first = counters.take_period()
    assert first == (5, 3, 1, 1, "unsupported encoding 'nv12'")
    counters.frame_received()
    counters.frame_rejected("empty image")
    counters.frame_rejected("empty image")
    assert counters.take_period() == (1, 0, 0, 2, "empty image")
    assert counters.take_period() == (0, 0, 0, 0, "")
    assert (counters.received, counters.processed, counters.dropped, counters.rejected) == \
        (6, 3, 1, 3)
    assert counters.rejected_by_reason == {"unsupported encoding 'nv12'": 1, "empty image": 2}
    assert counters.last_rejection_reason == "empty image"


@pytest.mark.parametrize("start, new, expected", [
    ((OK, ""), (OK, "a"), (OK, "a")),
    ((OK, "a"), (OK, "b"), (OK, "a; b")),
    ((OK, "a"), (WARN, "w"), (WARN, "w")),
    ((WARN, "w"), (OK, "a"), (WARN, "w")),
    ((WARN, "w"), (ERROR, "e"), (ERROR, "w; e")),
])
def test_merge_summary_like_diagnostic_updater(start, new, expected):
    assert merge_summary(start[0], start[1], new[0], new[1]) == expected


# ---------------------------------------------------------------- records


def power_summary(**changes):
    fields = dict(available=True, source="ina3221_hwmon:VDD_IN", average_w=12.5,
                  joules_per_frame=0.41667, frames=30, window_s=1.0, reason="")
    fields.update(changes)
    return PowerSummary(**fields)


def healthy_setup(clock):
    frequency = FrequencyStatus(min_freq=10.0, max_freq=30.0, clock=clock)
    timestamp = TimestampStatus(clock=clock)
    counters = FrameCounters()
    inference, latency = RollingPercentiles(), RollingPercentiles()
    for index in range(21):
        counters.frame_received()
        counters.frame_processed()
        frequency.tick()
        timestamp.tick(clock.now - 0.05)
        inference.add(10.0 + index)
        latency.add(30.0 + index)
    clock.now += 1.0
    return frequency, timestamp, counters, inference, latency


def _values(status):
    """A task's values as the status carries them: strings (diagnostic_updater's ``add``)."""
    return {str(k): str(v) for k, v in status.values}


def _pipeline(counters, inference=None, latency=None, max_latency_ms=None, stage_p50=None):
    return pipeline_status(counters, inference, latency, max_latency_ms, stage_p50)


def _model(power=None, backend="", precision="", model="", input_size=""):
    return model_status(backend, precision, model, input_size, power)


def test_healthy_statuses():
    clock = FakeClock()
    frequency, timestamp, counters, inference, latency = healthy_setup(clock)
    rate, delay = frequency.run(), timestamp.run()
    assert (rate.level, rate.message) == (OK, "Desired frequency met")
    assert (delay.level, delay.message) == (OK, "Timestamps are reasonable.")
    assert _values(rate)["Actual frequency (Hz)"] == "21.000000"
    assert _values(delay)["Latest timestamp delay:"] == "0.050000"
    pipeline = _pipeline(counters, inference, latency)
    assert (pipeline.level, pipeline.message) == (OK, "Processing frames.")
    values = _values(pipeline)
    assert values["Frames received"] == "21" and values["Frames processed"] == "21"
    assert values["Frames dropped"] == "0" and values["Frames rejected"] == "0"
    assert values["Inference p50 (ms)"] == "20.0"
    assert values["Inference p95 (ms)"] == "29.0"
    assert values["End-to-end latency p50 (ms)"] == "40.0"
    assert values["End-to-end latency p95 (ms)"] == "49.0"
    model = _model(power_summary(), "tensorrt", "fp16", "espnetv2_city", (1024, 512))
    assert (model.level, model.message) == (OK, "tensorrt fp16, 12.500 W")
    assert _values(model) == {
        "Backend": "tensorrt", "Precision": "fp16", "Model": "espnetv2_city",
        "Input size": "1024x512", "Average power (W)": "12.500",
        "Energy per frame (J)": "0.4167", "Power source": "ina3221_hwmon:VDD_IN"}


def test_no_frames_processed_while_received_is_an_error():
    counters = FrameCounters()
    counters.frame_received(7)
    pipeline = _pipeline(counters)
    assert pipeline.level == ERROR
    assert pipeline.message == "No frames processed: 7 received in last period."


def test_rejections_warn_with_the_last_reason_and_only_for_that_period():
    counters = FrameCounters()
    counters.frame_received(4)
    counters.frame_processed(2)
    counters.frame_rejected("unsupported image encoding '16UC1'")
    counters.frame_rejected("data is truncated")
    pipeline = _pipeline(counters)
    assert pipeline.level == WARN
    assert pipeline.message == "2 frames rejected in last period (last: data is truncated)."
    values = _values(pipeline)
    assert values["Frames rejected: data is truncated"] == "1"
    assert values["Frames rejected: unsupported image encoding '16UC1'"] == "1"
    assert values["Last rejection reason"] == "data is truncated"
    counters.frame_received()
    counters.frame_processed()
    later = _pipeline(counters)
    assert (later.level, later.message) == (OK, "Processing frames.")
    assert _values(later)["Frames rejected"] == "2"  # totals stay


def test_all_frames_rejected_merges_error_and_warning():
    counters = FrameCounters()
    counters.frame_received()
    counters.frame_rejected("bad step")
    pipeline = _pipeline(counters)
    assert pipeline.level == ERROR
    assert pipeline.message == ("No frames processed: 1 received in last period.; "
                                "1 frames rejected in last period (last: bad step).")


def test_no_frames_received_warns():
    pipeline = _pipeline(FrameCounters())
    assert (pipeline.level, pipeline.message) == (WARN, "No frames received in last period.")
    assert _values(pipeline)["Inference p50 (ms)"] == "no samples"


def test_latency_budget_warning():
    counters = FrameCounters()
    counters.frame_received()
    counters.frame_processed()
    latency = RollingPercentiles()
    latency.add(250.0)
    pipeline = _pipeline(counters, latency=latency, max_latency_ms=100.0)
    assert pipeline.level == WARN
    assert pipeline.message == "End-to-end latency p95 250.0 ms above 100.0 ms."


def test_output_checks_merge_to_the_worst():
    """The output task is a composite of both checks, merged as diagnostic_updater does."""
    clock = FakeClock()
    frequency = FrequencyStatus(min_freq=10.0, clock=clock)
    timestamp = TimestampStatus(clock=clock)
    frequency.tick()
    timestamp.tick(clock.now - 9.0)
    clock.now += 1.0
    level, message = OK, ""
    for status in (frequency.run(), timestamp.run()):
        level, message = merge_summary(level, message, status.level, status.message)
    assert level == ERROR
    assert message == "Frequency too low.; Timestamps too far in past seen."


@pytest.mark.parametrize("power, watts, joules", [
    (None, "unavailable: no power monitor", "unavailable: no power monitor"),
    (power_summary(available=False, source="unavailable", average_w=None,
                   joules_per_frame=None, reason="no power source found: rapl: none"),
     "unavailable: no power source found: rapl: none",
     "unavailable: no power source found: rapl: none"),
    (power_summary(average_w=None, joules_per_frame=None, reason="collecting samples"),
     "unavailable: collecting samples", "unavailable: collecting samples"),
    (power_summary(joules_per_frame=None, reason="no frames processed in the last 2.0 s"),
     "12.500", "unavailable: no frames processed in the last 2.0 s"),
])
def test_power_values(power, watts, joules):
    model = _model(power)
    values = _values(model)
    assert values["Average power (W)"] == watts
    assert values["Energy per frame (J)"] == joules
    assert model.level == OK
    if watts.startswith("unavailable"):
        assert model.message.endswith("power unavailable")


def test_model_defaults_are_unknown():
    model = _model()
    values = _values(model)
    assert values["Backend"] == values["Model"] == values["Input size"] == "unknown"
    assert model.message == "unknown backend unknown precision, power unavailable"
    assert _values(_model(input_size="512x256"))["Input size"] == "512x256"


def _records(node_name, hardware_id, counters, power=None):
    """The node's pipeline and model tasks as the fallback Updater names and fills them."""
    return [StatusRecord("%s: %s" % (node_name, task), status.level, status.message,
                         hardware_id, [(str(k), str(v)) for k, v in status.values])
            for task, status in ((TASK_PIPELINE, _pipeline(counters)),
                                 (TASK_MODEL, _model(power)))]


# ---------------------------------------------------------------- diagnostic_msgs


def test_to_diagnostic_array_with_real_messages():
    msgs = pytest.importorskip("diagnostic_msgs.msg")
    counters = FrameCounters()
    counters.frame_received(3)
    records = _records("seg", "jetson-orin", counters, power=power_summary())
    array = to_diagnostic_array(records, 1700000000.25)
    assert isinstance(array, msgs.DiagnosticArray)
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (1700000000, 250000000)
    carried = to_diagnostic_array([], 9.9999999999).header.stamp
    assert (carried.sec, carried.nanosec) == (10, 0)
    assert [status.name for status in array.status] == [record.name for record in records]
    pipeline = array.status[0]
    assert pipeline.level == msgs.DiagnosticStatus.ERROR
    assert pipeline.hardware_id == "jetson-orin"
    assert pipeline.values[0].key == "Frames received" and pipeline.values[0].value == "3"
    assert array.status[1].level == msgs.DiagnosticStatus.OK


def test_to_diagnostic_array_accepts_time_messages_and_rclpy_like_times():
    pytest.importorskip("diagnostic_msgs.msg")
    time_msgs = pytest.importorskip("builtin_interfaces.msg")
    stamp = time_msgs.Time(sec=5, nanosec=7)
    assert to_diagnostic_array([], stamp).header.stamp == stamp

    class RclpyTime:
        def to_msg(self):
            return stamp

    assert to_diagnostic_array([], RclpyTime()).header.stamp == stamp


def test_diagnostic_array_serializes():
    msgs = pytest.importorskip("diagnostic_msgs.msg")
    serialization = pytest.importorskip("rclpy.serialization")
    counters = FrameCounters()
    counters.frame_received(2)
    array = to_diagnostic_array(_records("seg", "hw", counters), 3.5)
    data = serialization.serialize_message(array)
    back = serialization.deserialize_message(data, msgs.DiagnosticArray)
    assert back.status[0].level == msgs.DiagnosticStatus.ERROR
    assert back.status[0].message == "No frames processed: 2 received in last period."


def test_modules_import_without_ros():
    code = ("import sys\n"
            "for name in ('rclpy', 'sensor_msgs', 'diagnostic_msgs', 'builtin_interfaces',"
            " 'cv_bridge', 'pynvml'):\n"
            "    sys.modules[name] = None\n"
            "import espnet_ros.messages.decode, espnet_ros.messages.encode, espnet_ros.messages.cdr,"
            " espnet_ros.messages.params, espnet_ros.messages.camera_info, espnet_ros.power,"
            " espnet_ros.messages.diagnostics, espnet_ros.tools.diagnostics_reader\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.check_call([sys.executable, "-c", code], cwd=root)


# ---------------------------------------------------------------- node stats and the reader
def _array(*statuses):
    kv = SimpleNamespace
    return SimpleNamespace(status=[
        SimpleNamespace(name=name, level=level, message=message, hardware_id="espnet_ros/cpu",
                        values=[kv(key=k, value=v) for k, v in values.items()])
        for name, level, message, values in statuses])


def test_node_stats_feed_the_pipeline_status_with_stage_percentiles():
    from espnet_ros.ros.node_stats import STAGES, NodeStats
    stats = NodeStats()
    stats.counters.frame_received(3)
    for ms in (10.0, 20.0, 30.0):
        stats.frame_served({"decode": ms, "inference": 2 * ms, "arrival": None}, 5.0)
    assert stats.counters.processed == 3 and len(stats.stages["arrival"]) == 0
    p50 = stats.stage_p50()
    assert list(p50) == list(STAGES) and p50["decode"] == 20.0 and p50["inference"] == 40.0
    values = _values(_pipeline(stats.counters, stats.stages["inference"], stats.latency_ms,
                               stage_p50=p50))
    assert values["Stage p50 (ms): decode"] == "20.0"
    assert values["Stage p50 (ms): arrival"] == "no samples"
    assert values["Inference p50 (ms)"] == "40.0"


def test_diagnostics_reader_keeps_one_nodes_statuses():
    from espnet_ros.tools.diagnostics_reader import DiagnosticsReader
    clock = iter(range(100)).__next__
    reader = DiagnosticsReader("/front/espnet_segmentation", clock=clock)
    other = ("/rear/espnet_segmentation: frame pipeline", b"\x00", "x", {"Frames received": "9"})
    assert not reader.feed(_array(other))
    assert reader.latest(TASK_PIPELINE) is None and reader.value(TASK_PIPELINE, "k", "-") == "-"
    ours = ("/front/espnet_segmentation: frame pipeline", b"\x01", "1 frames rejected",
            {"Frames received": "4", "Frames processed": "2", "Frames dropped": "1",
             "Frames rejected": "1", "Stage p50 (ms): decode": "0.5",
             "Stage p50 (ms): arrival": "no samples"})
    model = ("/front/espnet_segmentation: model and power", 0, "torch fp32", {"Backend": "torch"})
    assert reader.feed(_array(other, ours, model))
    later = ("/front/espnet_segmentation: frame pipeline", b"\x00", "Processing frames.",
             {"Frames received": "8", "Frames processed": "7", "Frames dropped": "1",
              "Frames rejected": "0"})
    assert reader.feed(_array(later))
    status = reader.latest(TASK_PIPELINE)
    assert status.level == 0 and status.hardware_id == "espnet_ros/cpu"
    assert reader.counters(status) == {"received": 8, "processed": 7, "dropped": 1, "rejected": 0}
    first = reader.find(TASK_PIPELINE, lambda s: s.level == WARN)
    assert first.message == "1 frames rejected"
    assert reader.value(TASK_MODEL, "Backend") == "torch"  # the newest report that has it
    assert reader.stage_p50() == {}  # the newest pipeline status has no stage keys
    assert [r.time for r in reader.reports] == [0, 1]
    reader.feed(_array(ours))
    assert reader.stage_p50() == {"decode": 0.5}
    assert reader.counters(None) is None
