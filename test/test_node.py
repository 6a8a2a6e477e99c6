"""The segmentation node in its own process, driven over real rclpy/DDS from this process."""
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rosutil import NodeProcess, padded_image, stamp  # noqa: E402

from espnet_ros.inference import Segmenter  # noqa: E402
from espnet_ros.messages.decode import image_to_bgr, overlay_encoding_for  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
SIZE = (256, 128)
PARAMS = {"model": MODEL, "input_width": SIZE[0], "input_height": SIZE[1], "warmup_frames": 1,
          "use_camera_info": True}


@pytest.fixture(scope="module")
def node_a(tmp_path_factory, probe, interfaces_env, data_dir):
    """The node with camera_info, the project's params file and the generated messages."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image

    from espnet_ros.ros.interfaces import load_segmentation_info
    proc = NodeProcess("/test_a", PARAMS, tmp_path_factory.mktemp("node_a"),
                       extra_env=interfaces_env, params_file="config/segment.yaml")
    info_cls, reason = load_segmentation_info()
    assert info_cls is not None, reason
    for name in ("label", "color_mask", "overlay"):
        probe.subscribe(Image, proc.base + "/" + name)
    probe.subscribe(CameraInfo, proc.base + "/camera_info")
    probe.subscribe(info_cls, proc.base + "/info")
    probe.subscribe(DiagnosticArray, "/diagnostics", depth=100)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    proc.image_pub = probe.node.create_publisher(Image, "/test_a/image", qos)
    proc.info_pub = probe.node.create_publisher(CameraInfo, "/test_a/camera_info", qos)
    ready = probe.spin_until(lambda: proc.image_pub.get_subscription_count() > 0
                             and probe.node.count_publishers(proc.base + "/label") > 0, 180)
    assert ready, proc.log()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def offline():
    return Segmenter.from_zoo(MODEL, input_size=SIZE)


def _yuv422(bgr, order):
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV).astype(np.int32)
    y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
    u2 = ((u[:, 0::2] + u[:, 1::2]) // 2).astype(np.uint8)
    v2 = ((v[:, 0::2] + v[:, 1::2]) // 2).astype(np.uint8)
    h, w = y.shape
    out = np.zeros((h, w, 2), np.uint8)
    if order == "uyvy":
        out[:, 0::2, 0], out[:, 1::2, 0] = u2, v2
        out[:, :, 1] = y
    else:
        out[:, :, 0] = y
        out[:, 0::2, 1], out[:, 1::2, 1] = u2, v2
    return out


def _bayer(bgr, pattern):
    """Mosaic per the ROS pattern name: the letters give the 2x2 block's colours row-major."""
    channel = {"r": 2, "g": 1, "b": 0}
    out = np.zeros(bgr.shape[:2], np.uint8)
    for i, letter in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = bgr[dy::2, dx::2, channel[letter]]
    return out


def encoded_inputs(bgr):
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cases = [
        ("bgr8", bgr, False), ("rgb8", bgr[..., ::-1], False),
        ("bgra8", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), False),
        ("rgba8", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), False),
        ("mono8", gray, False),
        ("mono16", gray.astype(np.uint16) * 257, False),
        ("mono16", (gray.astype(np.uint16) * 257).astype(">u2"), True),
        ("yuv422", _yuv422(bgr, "uyvy"), False), ("yuv422_yuy2", _yuv422(bgr, "yuyv"), False),
    ]
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        cases.append(("bayer_%s8" % pattern, _bayer(bgr, pattern), False))
    return cases


def _publish_and_wait(probe, node, msg, topics=("label", "color_mask", "overlay"), timeout=60,
                      before_each=None):
    """Publishes ``msg`` (resent until seen) and returns the newest output with its stamp."""
    counts = {t: len(probe.received[node.base + "/" + t]) for t in topics}
    key = (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def answered(t):
        return [m for m in probe.messages(node.base + "/" + t)[counts[t]:]
                if (m.header.stamp.sec, m.header.stamp.nanosec) == key]

    def publish():
        if before_each is not None:
            before_each()
        node.image_pub.publish(msg)

    done = False
    end = time.monotonic() + timeout
    while not done and time.monotonic() < end:
        publish()
        done = probe.spin_until(lambda: all(answered(t) for t in topics), 1.0)
    assert done, "no output for %s\n%s" % (msg.encoding, node.log()[-3000:])
    return {t: answered(t)[-1] for t in topics}


def _label_array(msg):
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width]


def test_every_encoding_with_padded_rows_and_the_input_header(probe, node_a, offline, frame):
    for i, (encoding, pixels, bigendian) in enumerate(encoded_inputs(frame)):
        msg = padded_image(pixels, encoding, pad=7 if pixels.dtype == np.uint8 else 6,
                           bigendian=bigendian, stamp_msg=stamp(1000 + i, 12345),
                           frame_id="cam_%d" % i)
        out = _publish_and_wait(probe, node_a, msg)
        for name, result in out.items():
            assert result.header.stamp.sec == 1000 + i and result.header.stamp.nanosec == 12345
            assert result.header.frame_id == "cam_%d" % i, name
            assert (result.width, result.height) == (320, 160)
        assert out["label"].encoding == "mono8"
        assert out["color_mask"].encoding == "rgb8"
        assert out["overlay"].encoding == overlay_encoding_for(encoding)
        expected = offline.segment(image_to_bgr(msg))
        agreement = (_label_array(out["label"]) == expected).mean()
        assert agreement > 0.999, (encoding, agreement)


def test_camera_info_is_scaled_for_model_resolution_output(probe, node_a, frame):
    from espnet_ros.messages.encode import camera_info_message, rclpy_kit
    kit = rclpy_kit()
    info = camera_info_message(kit, kit.Header(stamp=stamp(2000), frame_id="cam"), 320, 160)
    results = probe.set_parameters(node_a.base, output_resolution="model")
    assert results[0].successful, results[0].reason
    topics = ("label", "camera_info")
    out = _publish_and_wait(probe, node_a, padded_image(frame, "bgr8", stamp_msg=stamp(2001)), topics,
                            before_each=lambda: node_a.info_pub.publish(info))
    assert (out["label"].width, out["label"].height) == SIZE
    scaled = out["camera_info"]
    assert (scaled.width, scaled.height) == SIZE
    assert scaled.header.stamp.sec == 2001
    sx, sy = SIZE[0] / 320.0, SIZE[1] / 160.0
    assert scaled.k[0] == pytest.approx(info.k[0] * sx) and scaled.k[2] == pytest.approx(160 * sx)
    assert scaled.k[4] == pytest.approx(info.k[4] * sy) and scaled.k[5] == pytest.approx(80 * sy)
    assert scaled.p[0] == pytest.approx(info.p[0] * sx) and scaled.p[6] == pytest.approx(80 * sy)
    assert probe.set_parameters(node_a.base, output_resolution="input")[0].successful


def test_info_message_content(probe, node_a, frame):
    topics = ("label", "info")
    out = _publish_and_wait(probe, node_a, padded_image(frame, "bgr8", stamp_msg=stamp(3000, 7)),
                            topics)
    info, label = out["info"], _label_array(out["label"])
    assert info.header.stamp.sec == 3000 and info.header.stamp.nanosec == 7
    assert info.model == MODEL and info.backend == "torch" and info.precision == "fp32"
    assert (info.width, info.height) == (320, 160)
    assert list(info.class_ids) == sorted(np.unique(label).tolist())
    counts = np.bincount(label.ravel(), minlength=20)
    assert list(info.pixel_counts) == [int(counts[c]) for c in info.class_ids]
    assert sum(info.pixel_counts) == 320 * 160
    assert info.void_id == 19
    assert 0 < info.inference_ms < 10000 and info.latency_ms > 0


def test_bad_input_is_rejected_and_the_node_keeps_serving(probe, node_a, frame):
    from sensor_msgs.msg import Image
    good = padded_image(frame, "bgr8", stamp_msg=stamp(4000))
    unknown = padded_image(frame, "bgr8", stamp_msg=stamp(4001))
    unknown.encoding = "32FC7"
    wrong_step = padded_image(frame, "bgr8", stamp_msg=stamp(4002))
    wrong_step.step = 100
    zero = Image(height=0, width=0, encoding="bgr8", step=0)
    truncated = padded_image(frame, "bgr8", stamp_msg=stamp(4003))
    truncated.data = bytes(truncated.data)[: len(truncated.data) // 2]
    labels = probe.received[node_a.base + "/label"]
    before = len(labels)
    for bad in (unknown, wrong_step, zero, truncated):
        # Resent until the node has rejected it (best-effort input may lose a message).
        rejected = node_a.log().count("rejected frame")
        for _ in range(30):
            node_a.image_pub.publish(bad)
            if probe.spin_until(lambda r=rejected: node_a.log().count("rejected frame") > r, 1.0):
                break
    out = _publish_and_wait(probe, node_a, good, ("label",))
    assert out["label"].header.stamp.sec == 4000
    # Nothing published for the bad frames: every label since is the good frame's.
    assert {m.header.stamp.sec for _, m in labels[before:]} == {4000}
    log = node_a.log()
    assert log.count("rejected frame") >= 4, log
    for text in ("32FC7", "step", "truncated"):
        assert text in log, text
    assert _diagnostic_value(probe, node_a, "frame pipeline", "Frames rejected",
                             lambda v: int(v) >= 4) is not None


def _reader(probe, node):
    """The node's statuses among the /diagnostics the probe received so far."""
    from espnet_ros.tools.diagnostics_reader import DiagnosticsReader
    reader = DiagnosticsReader(node.base)
    for msg in probe.messages("/diagnostics"):
        reader.feed(msg)
    return reader


def _diagnostic_value(probe, node, task, key, accept, timeout=10, status_ok=lambda s: True):
    found = []

    def check():
        status = _reader(probe, node).find(
            task, lambda s: status_ok(s) and key in s.values and accept(s.values[key]))
        if status is not None:
            found.append((status, status.values))
        return status is not None

    probe.spin_until(check, timeout)
    return found[0] if found else None


def _last_values(probe, node, task):
    status = _reader(probe, node).latest(task)
    return None if status is None else status.values


def test_diagnostics_keys_and_levels(probe, node_a):
    status, values = _diagnostic_value(probe, node_a, "frame pipeline", "Frames processed",
                                       lambda v: int(v) > 0)
    for key in ("Frames received", "Frames dropped", "Frames rejected", "Inference p50 (ms)",
                "Inference p95 (ms)", "End-to-end latency p50 (ms)", "End-to-end latency p95 (ms)"):
        assert key in values
    # Where a frame's time goes, stage by stage (p50 ms), as the node measured it.
    from espnet_ros.messages.diagnostics import STAGE_KEY
    from espnet_ros.ros.node_stats import STAGES
    for stage in STAGES:
        assert STAGE_KEY % stage in values, stage
    for stage in ("wait", "deserialize", "decode", "preprocess", "inference", "publish"):
        assert float(values[STAGE_KEY % stage]) >= 0, stage
    assert float(values[STAGE_KEY % "inference"]) > 0
    assert status.hardware_id == "espnet_ros/cpu"  # the device that really runs
    _, model = _diagnostic_value(probe, node_a, "model and power", "Backend", lambda v: True)
    assert model["Model"] == MODEL and model["Input size"] == "256x128"
    from espnet_ros.power import detect_power_source
    meter = detect_power_source()
    try:
        if meter.available:  # RAPL, NVML or a Jetson rail on this machine: a reading or why not
            assert model["Average power (W)"], model
        else:
            assert model["Average power (W)"].startswith("unavailable"), model
    finally:
        meter.close()
    output, output_values = _diagnostic_value(probe, node_a, "segmentation output",
                                              "Events in window", lambda v: True)
    assert "Actual frequency (Hz)" in output_values
    # Idle node: no frames in the period is a WARN with diagnostic_updater's wording.
    idle = _diagnostic_value(probe, node_a, "frame pipeline", "Frames received", lambda v: True,
                             timeout=5, status_ok=lambda s: "No frames received" in s.message)
    assert idle is not None and idle[0].level == 1


def test_parameter_changes_at_runtime(probe, node_a, frame):
    ok = probe.set_parameters(node_a.base, overlay_alpha=0.9, visible_classes="road, car")
    assert all(r.successful for r in ok)
    refused = probe.set_parameters(node_a.base, overlay_alpha=1.5)[0]
    assert not refused.successful
    refused = probe.set_parameters(node_a.base, model="no-such-model")[0]
    assert not refused.successful and "unknown model" in refused.reason
    refused = probe.set_parameters(node_a.base, input_transport="compressed")[0]
    assert not refused.successful  # read-only after start
    refused = probe.set_parameters(node_a.base, visible_classes="unicorn")[0]
    assert not refused.successful and "unicorn" in refused.reason
    out = _publish_and_wait(probe, node_a, padded_image(frame, "bgr8", stamp_msg=stamp(5000)),
                            ("overlay",))
    assert out["overlay"].header.stamp.sec == 5000  # still serving with the old model
    switched = probe.set_parameters(node_a.base, model="espnet-c-p2q3-cityscapes")[0]
    assert switched.successful, switched.reason
    out = _publish_and_wait(probe, node_a, padded_image(frame, "bgr8", stamp_msg=stamp(5001)),
                            ("label",))
    assert out["label"].header.stamp.sec == 5001


def test_latest_frame_semantics_under_a_60hz_camera(probe, tmp_path, frame):
    """A 60 Hz camera against a node that cannot keep up: drops counted, memory flat.

    max_rate_hz caps the node at 15 frames per second, so it cannot keep up however fast the
    machine is.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    probe.subscribe(DiagnosticArray, "/diagnostics", depth=100)
    node = NodeProcess("/test_load", {"model": MODEL, "input_width": 1024, "input_height": 512,
                                      "warmup_frames": 1, "max_rate_hz": 15.0}, tmp_path)
    try:
        probe.subscribe(Image, node.base + "/label")
        pub = probe.node.create_publisher(Image, "/test_load/image", 10)
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0
                                and probe.node.count_publishers(node.base + "/label") > 0, 180)
        big = cv2.resize(frame, (1024, 512))
        sent, rss = 0, []
        start = time.monotonic()
        while sent < 300:
            msg = padded_image(big, "bgr8", pad=0, stamp_msg=probe.node.get_clock().now().to_msg())
            pub.publish(msg)
            sent += 1
            if sent in (60, 300):
                rss.append(node.rss_kb())
            probe.spin_until(lambda: False, max(0.0, start + sent / 60.0 - time.monotonic()))
        probe.spin_until(lambda: False, 3.0)
        labels = probe.received[node.base + "/label"]
        # Best-effort input: DDS itself may lose frames on a busy machine; the node must account
        # for every frame it did receive. Wait until its counters settle.
        settled = []

        def counters_settled():
            values = _last_values(probe, node, "frame pipeline")
            settled.append(values)
            return (values is not None and len(settled) > 20 and settled[-21] is not None
                    and settled[-21]["Frames received"] == values["Frames received"]
                    and settled[-21]["Frames processed"] == values["Frames processed"])

        assert probe.spin_until(counters_settled, 30), settled[-1]
        values = settled[-1]
        received, processed = int(values["Frames received"]), int(values["Frames processed"])
        dropped = int(values["Frames dropped"])
        assert received >= 100 and 0 < processed < received and dropped > 0
        assert abs(received - processed - dropped) <= 1  # at most one frame in flight
        assert len(labels) == processed
        # No queue: the last outputs are fresh, not seconds behind the camera.
        received_ns, last = labels[-1]
        age_s = (received_ns - (last.header.stamp.sec * 10 ** 9 + last.header.stamp.nanosec)) * 1e-9
        assert age_s < 2.0, age_s
        assert rss[1] - rss[0] < 60 * 1024, rss  # bounded memory over 240 more frames
    finally:
        assert node.stop() == 0, node.log()


def test_compressed_input_and_corrupt_jpeg(probe, tmp_path, frame):
    from sensor_msgs.msg import CompressedImage, Image
    node = NodeProcess("/test_jpeg", {"model": MODEL, "input_width": 256, "input_height": 128,
                                      "warmup_frames": 1, "input_transport": "compressed"}, tmp_path)
    try:
        probe.subscribe(Image, node.base + "/overlay")
        pub = probe.node.create_publisher(CompressedImage, "/test_jpeg/image/compressed", 10)
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0
                                and probe.node.count_publishers(node.base + "/overlay") > 0, 180)
        ok, jpeg = cv2.imencode(".jpg", frame)
        corrupt = CompressedImage(format="jpeg")
        corrupt.data = jpeg.tobytes()[:200] + b"\x00" * 50
        corrupt.header.stamp = stamp(6000)
        # Best-effort input: the first message after discovery may be lost, so resend until
        # the node has seen (and rejected) one.
        for _ in range(20):
            pub.publish(corrupt)
            if probe.spin_until(lambda: "rejected frame" in node.log(), 1.0):
                break
        good = CompressedImage(format="jpeg")
        good.data = jpeg.tobytes()
        good.header.stamp = stamp(6001)
        good.header.frame_id = "jpeg_cam"
        topic = node.base + "/overlay"
        for _ in range(60):  # resent until answered
            pub.publish(good)
            if probe.spin_until(lambda: len(probe.received[topic]) >= 1, 1.0):
                break
        assert probe.received[topic], node.log()
        out = probe.messages(topic)
        assert {m.header.stamp.sec for m in out} == {6001}  # nothing for the corrupt one
        assert out[0].encoding == "bgr8" and out[0].header.frame_id == "jpeg_cam"
        assert "rejected frame" in node.log()
    finally:
        assert node.stop() == 0, node.log()


def test_missing_weights_exit_non_zero_with_a_clear_message(tmp_path):
    node = NodeProcess("/test_noweights", {"model": "enet"}, tmp_path)
    code = node.proc.wait(timeout=120)
    node.stop()
    assert code != 0
    assert "without published weights" in node.log()


def test_bench_node_end_to_end_structure(tmp_path, data_dir, interfaces_env):
    """`espnet-ros bench node` on a tiny configuration: structure, not speed."""
    import json
    import subprocess
    import sys

    from espnet_ros.ros.env import localhost_env
    from espnet_ros.ros.node_stats import STAGES
    env = localhost_env()
    env.update(interfaces_env)
    result = subprocess.run(
        [sys.executable, "-m", "espnet_ros.cli", "bench", "node", "--model", MODEL,
         "--frame-size", "256x128", "--model-size", "128x64", "--seconds", "1",
         "--rounds", "2", "--outputs", "label,color_mask,overlay,info", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "throughput ratio node / in process" in result.stdout
    report = json.loads((tmp_path / "bench_node.json").read_text())
    assert report["frame_size"] == "256x128" and report["model_size"] == "128x64"
    assert report["outputs"] == ["label", "color_mask", "overlay", "info"]
    assert report["skipped_outputs"] == {} and report["node_exit_code"] == 0
    # Both sides' thread counts are reported: the node's as it served (it may give one back).
    assert report["node_threads"] in (report["threads"], report["threads"] - 1, 1)
    assert "%s in the node" % report["node_threads"] in (tmp_path / "bench_node.md").read_text()
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for r in report["rounds"]:
        assert r["in_process"]["fps"] > 0 and r["node"]["frames"] > 0
        assert r["node"]["latency_frames"] > 0 and r["throughput_ratio"] > 0
        assert set(r["added_latency_ms"]) == {"p50", "p95"}
    # The node's own stage times come from its /diagnostics: every stage that ran is there.
    stages = report["node_stage_p50_ms"]
    assert set(stages) <= set(STAGES)
    for stage in ("wait", "deserialize", "decode", "preprocess", "inference", "color", "overlay",
                  "publish"):
        assert stages[stage] >= 0, stage
    assert stages["inference"] > 0


def test_demo_end_to_end(tmp_path, data_dir):
    """The main job's demo on the sample frames: live lines, overlays and a summary."""
    import json
    import subprocess
    import sys

    from espnet_ros.ros.env import localhost_env
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "espnet_ros.cli", "demo", "--model", MODEL, "--rate", "5",
         "--duration", "4", "--size", "512x256", "--out", str(out),
         "--param", "input_width:=256", "--param", "input_height:=128"],
        env=localhost_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FPS" in result.stdout and "latency p50" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_out"] > 0 and summary["fps"] > 0
    assert summary["diagnostics"]["frame pipeline"]["values"]["Frames processed"] != "0"
    overlays = sorted(out.glob("overlay_*.png"))
    assert overlays and cv2.imread(str(overlays[0])).shape == (256, 512, 3)
    assert (out / "summary.md").read_text().startswith("# espnet-ros demo")

