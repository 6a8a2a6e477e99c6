"""Hostile input at the node's boundary: every bad input gets one clear line and a counter,
nothing is decoded beyond the pixel limit, memory comes back, and a good frame after each is
still answered."""
import struct
import time
import zlib

import cv2
import pytest

rclpy = pytest.importorskip("rclpy")

from rosutil import NodeProcess, padded_image, stamp  # noqa: E402

from espnet_ros.messages.diagnostics import TASK_PIPELINE  # noqa: E402
from espnet_ros.messages.encode import camera_info_message, rclpy_kit  # noqa: E402
from espnet_ros.tools.diagnostics_reader import DiagnosticsReader  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
SMALL = {"model": MODEL, "input_width": 128, "input_height": 64, "warmup_frames": 1}


def _start(probe, namespace, params, tmp_path_factory, msg_type):
    from sensor_msgs.msg import CameraInfo, Image
    node = NodeProcess(namespace, dict(SMALL, **params), tmp_path_factory.mktemp(namespace[1:]))
    for name in ("label", "camera_info"):
        probe.subscribe(CameraInfo if name == "camera_info" else Image, node.base + "/" + name)
    topic = namespace + ("/image/compressed" if params.get("input_transport") == "compressed"
                         else "/image")
    node.pub = probe.node.create_publisher(msg_type, topic, 5)
    node.info_pub = probe.node.create_publisher(CameraInfo, namespace + "/camera_info", 5)
    assert probe.spin_until(lambda: node.pub.get_subscription_count() > 0
                            and "serving" in node.log(), 180), node.log()
    return node


@pytest.fixture(scope="module")
def raw_node(probe, tmp_path_factory, data_dir):
    from sensor_msgs.msg import Image
    node = _start(probe, "/hostile_raw", {"use_camera_info": True}, tmp_path_factory, Image)
    yield node
    assert node.stop() == 0, node.log()


@pytest.fixture(scope="module")
def compressed_node(probe, tmp_path_factory, data_dir):
    from sensor_msgs.msg import CompressedImage
    node = _start(probe, "/hostile_png", {"input_transport": "compressed"}, tmp_path_factory,
                  CompressedImage)
    yield node
    assert node.stop() == 0, node.log()


@pytest.fixture(scope="module")
def frame(city_frame):
    return cv2.resize(city_frame, (256, 128), interpolation=cv2.INTER_AREA)


def _labels(probe, node):
    return probe.messages(node.base + "/label")


def _answered(probe, node, sec):
    return any(m.header.stamp.sec == sec for m in _labels(probe, node))


def _send_until(probe, node, make, done, timeout=60.0, resend=1.0):
    """Best-effort input may lose any message: resend every ``resend`` s until ``done()``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        node.pub.publish(make())
        if probe.spin_until(done, resend):
            return True
    return False


def _good_frame_is_answered(probe, node, frame, sec):
    if hasattr(node.pub.msg_type, "format"):
        def make():
            ok, data = cv2.imencode(".png", frame)
            msg = node.pub.msg_type(format="png")
            msg.data = data.tobytes()
            msg.header.stamp = stamp(sec)
            return msg
    else:
        def make():
            return padded_image(frame, "bgr8", stamp_msg=stamp(sec))
    assert _send_until(probe, node, make, lambda: _answered(probe, node, sec)), node.log()[-3000:]


def _diagnostics(probe, node):
    """A DiagnosticsReader fed with every /diagnostics message the probe received for ``node``."""
    reader = DiagnosticsReader(node.base)
    for msg in probe.messages("/diagnostics"):
        reader.feed(msg)
    return reader


def _pipeline_value(probe, node, key, accept, timeout=15.0):
    found = []

    def check():
        status = _diagnostics(probe, node).find(
            TASK_PIPELINE, lambda s: key in s.values and accept(s.values[key]))
        if status is not None:
            found.append(status.values[key])
        return status is not None

    probe.spin_until(check, timeout)
    return found[0] if found else None


def _rejected_lines(node):
    return [line for line in node.log().splitlines() if "rejected frame" in line]


def _rejected_once(probe, node, msg):
    """Sends ``msg`` until the node has logged one more rejection."""
    count = len(_rejected_lines(node))
    assert _send_until(probe, node, lambda: msg,
                       lambda: len(_rejected_lines(node)) > count), node.log()[-2000:]


# ---------------------------------------------------------------- raw input
def test_forged_and_flooding_encoding_strings_give_one_short_line(probe, raw_node, frame):
    before = len(_rejected_lines(raw_node))
    forged = padded_image(frame, "bgr8", stamp_msg=stamp(100))
    forged.encoding = "bgr8\n[ERROR] [1.0] [fake]: forged line"
    flood = padded_image(frame, "bgr8", stamp_msg=stamp(101))
    flood.encoding = "y" * 100000
    for bad in (forged, flood):
        _rejected_once(probe, raw_node, bad)
    lines = _rejected_lines(raw_node)[before:]
    assert "forged line" not in "\n".join(line for line in raw_node.log().splitlines()
                                         if "rejected frame" not in line)
    assert all(len(line) < 500 for line in lines), max(map(len, lines))
    assert _pipeline_value(probe, raw_node, "Frames rejected: unsupported encoding",
                           lambda v: int(v) >= 2) is not None
    _good_frame_is_answered(probe, raw_node, frame, 102)


def test_a_raw_frame_over_the_pixel_limit_is_refused_before_decoding(probe, raw_node, frame):
    from sensor_msgs.msg import Image
    huge = Image(height=20000, width=20000, encoding="bgr8", step=60000)
    huge.data = bytes(1000)  # claims 1.2 GB; the limit must speak before "truncated data"
    huge.header.stamp = stamp(110)
    count = len(_rejected_lines(raw_node))
    assert _send_until(probe, raw_node, lambda: huge,
                       lambda: len(_rejected_lines(raw_node)) > count)
    assert "max_input_pixels" in _rejected_lines(raw_node)[-1]
    assert _pipeline_value(probe, raw_node, "Frames rejected: too many pixels",
                           lambda v: int(v) >= 1) is not None
    _good_frame_is_answered(probe, raw_node, frame, 111)


def test_a_degenerate_camera_info_is_dropped_and_frames_keep_their_camera_info(probe, raw_node,
                                                                              frame):
    kit = rclpy_kit()
    good = camera_info_message(kit, kit.Header(frame_id="cam"), 256, 128)
    infos = probe.received[raw_node.base + "/camera_info"]

    def info_for(sec):
        return [m for _, m in infos if m.header.stamp.sec == sec]

    assert _send_until(probe, raw_node, lambda: (raw_node.info_pub.publish(good), padded_image(
        frame, "bgr8", stamp_msg=stamp(120)))[1], lambda: info_for(120))
    bad = camera_info_message(kit, kit.Header(frame_id="cam"), 256, 128)
    bad.width = bad.height = 0
    processed = []

    def processed_now():
        value = _pipeline_value(probe, raw_node, "Frames processed", lambda v: True, 2)
        return int(value) if value is not None else 0

    processed.append(processed_now())
    for sec in (121, 122, 123):
        def bad_info_then_frame(sec=sec):
            raw_node.info_pub.publish(bad)
            return padded_image(frame, "bgr8", stamp_msg=stamp(sec))
        assert _send_until(probe, raw_node, bad_info_then_frame,
                           lambda sec=sec: info_for(sec)), raw_node.log()[-2000:]
        published = info_for(sec)[-1]
        assert (published.width, published.height) == (256, 128)  # the last good one
    assert _pipeline_value(probe, raw_node, "Camera infos rejected", lambda v: int(v) >= 1)
    assert "rejected camera_info: no image size" in raw_node.log()
    assert _pipeline_value(probe, raw_node, "Frames processed",
                           lambda v: int(v) >= processed[0] + 3) is not None


@pytest.mark.parametrize("size, binning, sec", [((512, 256), 2, 125), ((0, 0), 0, 126)],
                         ids=["binned", "sizeless"])
def test_an_uncalibrated_camera_info_is_republished_for_the_output(probe, raw_node, frame,
                                                                   size, binning, sec):
    """usb_cam / v4l2_camera without a calibration file: K, D, R, P zero (sensor_msgs says so).
    Consumers still need the output's size and frame from ~/camera_info."""
    kit = rclpy_kit()
    info = kit.CameraInfo(header=kit.Header(frame_id="cam"), width=size[0], height=size[1],
                          binning_x=binning, binning_y=binning)
    assert list(info.k) == [0.0] * 9 and list(info.p) == [0.0] * 12 and list(info.d) == []
    infos = probe.received[raw_node.base + "/camera_info"]

    def published():
        return [m for _, m in infos if m.header.stamp.sec == sec]

    rejected = raw_node.log().count("rejected camera_info")
    assert _send_until(probe, raw_node, lambda: (raw_node.info_pub.publish(info), padded_image(
        frame, "bgr8", stamp_msg=stamp(sec), frame_id="cam"))[1], published), \
        raw_node.log()[-2000:]
    out = published()[-1]
    assert (out.width, out.height) == (256, 128) and out.header.frame_id == "cam"
    assert list(out.k) == [0.0] * 9 and list(out.p) == [0.0] * 12 and list(out.r) == [0.0] * 9
    assert (out.binning_x, out.binning_y) == (0, 0)
    assert raw_node.log().count("rejected camera_info") == rejected


def test_a_second_node_with_the_same_name_is_reported(probe, raw_node, tmp_path):
    twin = NodeProcess("/hostile_raw", SMALL, tmp_path)
    try:
        needle = "2 nodes are named /hostile_raw/espnet_segmentation"
        assert probe.spin_until(lambda: needle in raw_node.log() or needle in twin.log(), 60), \
            twin.log()[-2000:]
    finally:
        assert twin.stop() == 0, twin.log()


@pytest.mark.parametrize("size", [(3000, 2000), (3840, 2160), (4096, 3072)],
                         ids=["3000x2000", "4K", "4096x3072"])
def test_best_effort_8bit_frames_up_to_4096x3072_arrive_on_the_loopback_profile(
        probe, raw_node, frame, size):
    """config/fastdds_localhost.xml carries each of these bgr8 frames in one shared-memory
    message: sent once each, best effort, every one is answered (with 16 MiB messages 1 or 2
    of 3 were). A frame that is lost anyway must be counted and named in the log."""
    big = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST)
    lost = "lost before reaching the node"
    answered = []
    for i in range(3):
        sec = 1000 + size[0] + i
        raw_node.pub.publish(padded_image(big, "bgr8", pad=0, stamp_msg=stamp(sec)))
        if probe.spin_until(lambda sec=sec: _answered(probe, raw_node, sec), 30.0):
            answered.append(sec)
    if len(answered) < 3:  # the failure says whether the node counted and named the loss
        counted = _pipeline_value(probe, raw_node, "Frames lost before the node",
                                  lambda v: int(v) > 0, 5.0)
        pytest.fail("%d of 3 answered; lost counted: %s; warning: %s"
                    % (len(answered), counted, lost in raw_node.log()))
    assert lost not in raw_node.log()
    _good_frame_is_answered(probe, raw_node, frame, 10000 + size[0])


# ---------------------------------------------------------------- compressed input
def _png_bomb(width, height):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 64, 9)  # a few rows: the rest is implied
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _compressed(data, sec, fmt="png"):
    from sensor_msgs.msg import CompressedImage
    msg = CompressedImage(format=fmt)
    msg.data = data
    msg.header.stamp = stamp(sec)
    return msg


def test_a_decompression_bomb_is_refused_from_its_header(probe, compressed_node, frame):
    rss_before = compressed_node.rss_kb()
    bomb = _compressed(_png_bomb(30000, 30000), 200)
    assert len(bomb.data) < 200_000
    count = len(_rejected_lines(compressed_node))
    assert _send_until(probe, compressed_node, lambda: bomb,
                       lambda: len(_rejected_lines(compressed_node)) > count)
    assert "30000x30000" in _rejected_lines(compressed_node)[-1]
    assert _pipeline_value(probe, compressed_node, "Frames rejected: too many pixels",
                           lambda v: int(v) >= 1) is not None
    assert compressed_node.rss_kb() - rss_before < 200 * 1024  # nothing was decoded
    _good_frame_is_answered(probe, compressed_node, frame, 201)


def test_truncated_and_corrupt_png_give_one_logged_line_and_no_bare_codec_output(
        probe, compressed_node, frame):
    ok, data = cv2.imencode(".png", frame)
    data = data.tobytes()
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 16] = b"\x55" * 16
    for bad, reason in ((data[: len(data) // 2], "truncated data"),
                        (bytes(corrupt), "corrupt compressed data")):
        _rejected_once(probe, compressed_node, _compressed(bad, 210))
        assert _pipeline_value(probe, compressed_node, "Frames rejected: " + reason,
                               lambda v: int(v) >= 1) is not None, reason
    bare = [line for line in compressed_node.log().splitlines()
            if line.startswith("libpng") or line.startswith("[ WARN")]
    assert not bare, bare
    _good_frame_is_answered(probe, compressed_node, frame, 211)


def _memory_map(pid):
    """Resident kB by kind of mapping (heap, anonymous, shared memory, files), for a failure."""
    kinds, kind = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anon]"
                kind = name if name.startswith("[") else ("shm" if "/dev/shm" in name
                                                          else "files")
            elif parts[0] == "Rss:":
                kinds[kind] = kinds.get(kind, 0) + int(parts[1])
    return kinds


def _resident_kb(pid):
    """VmRSS and its parts (RssAnon: the process's own memory; RssShmem: shared memory, here
    Fast DDS segments, the senders' pages included) in kB."""
    with open("/proc/%d/status" % pid) as f:
        return {line.split(":")[0]: int(line.split()[1]) for line in f
                if line.startswith(("VmRSS", "RssAnon", "RssShmem"))}


@pytest.mark.parametrize("transport", ["raw bgr8", "png"])
def test_memory_returns_after_one_large_frame(request, probe, frame, transport):
    """After one 4096x3072 frame, three small ones bring resident memory back within 50 MB.

    The node's own memory (RssAnon) must come back within 2 bytes a pixel of the large frame
    (25 MB): keeping its decoded copy (3 bytes a pixel), its label or the float scratch (16)
    fails. The rest of the 50 MB is shared memory: the pages of the sender's Fast DDS segment
    that the node read stay mapped (the sender holds the whole segment anyway).
    """
    node = request.getfixturevalue("raw_node" if transport == "raw bgr8" else "compressed_node")
    sec = [300 if transport == "png" else 400]

    def small_frames(count):
        for _ in range(count):
            sec[0] += 1
            _good_frame_is_answered(probe, node, frame, sec[0])
        return _resident_kb(node.proc.pid)

    before = small_frames(4)
    width, height = 4096, 3072
    large = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    sec[0] += 1
    if transport == "png":
        ok, data = cv2.imencode(".png", large)
        message = _compressed(data.tobytes(), sec[0])
    else:
        message = padded_image(large, "bgr8", pad=0, stamp_msg=stamp(sec[0]))
    assert _send_until(probe, node, lambda: message,
                       lambda s=sec[0]: _answered(probe, node, s), 120, resend=15.0)
    after = small_frames(3)
    kept = {key: (after[key] - before[key]) * 1024 for key in after}
    detail = (before, after, _memory_map(node.proc.pid))
    assert kept["VmRSS"] < 50 * 2 ** 20, detail
    assert kept["RssAnon"] < 2 * width * height, detail


def _latest_pipeline(probe, node):
    status = _diagnostics(probe, node).latest(TASK_PIPELINE)
    return {k: v for k, v in status.values.items() if k.startswith("Frames")} if status else {}


def test_a_frame_too_large_for_the_transport_is_counted_never_silently_gone(
        probe, raw_node, frame):
    """A best-effort bgr8 frame of 8192x6144 (151 MB) is more than the loopback profile's
    128 MiB shared-memory segment holds at once: whether Fast DDS gets it through depends on
    how fast the node frees the fragments. Either way it is never answered and never gone
    silently: counted as lost once the next frame arrives (rclpy's message-lost event, with
    one warning naming the fix), or rejected as too many pixels, or dropped for a newer
    frame."""
    keys = ("Frames lost before the node", "Frames rejected: too many pixels", "Frames dropped")
    _good_frame_is_answered(probe, raw_node, frame, 19999)
    probe.spin_until(lambda: False, 2.5)  # a diagnostics period (1 s) after that frame
    before = sum(int(_latest_pipeline(probe, raw_node).get(key, 0)) for key in keys)
    huge = cv2.resize(frame, (8192, 6144), interpolation=cv2.INTER_NEAREST)
    message = padded_image(huge, "bgr8", pad=0, stamp_msg=stamp(20000))
    sent = 2
    for i in range(sent):
        raw_node.pub.publish(message)
        probe.spin_until(lambda: False, 2.0)  # time to be taken, if it arrived
        _good_frame_is_answered(probe, raw_node, frame, 20001 + i)
    counted = []

    def accounted():
        status = _diagnostics(probe, raw_node).find(TASK_PIPELINE, lambda s: sum(
            int(s.values.get(key, 0)) for key in keys) >= before + sent)
        counted[:] = [status.values] if status is not None else []
        return status is not None

    assert probe.spin_until(accounted, 15.0), (_latest_pipeline(probe, raw_node),
                                               raw_node.log()[-1500:])
    assert not _answered(probe, raw_node, 20000)
    warnings = [line for line in raw_node.log().splitlines()
                if "were lost before reaching the node" in line]
    lost = int(counted[0].get("Frames lost before the node", 0))
    assert len(warnings) == (1 if lost else 0), warnings
    if lost:
        assert "input_reliability:=reliable" in warnings[0] and "Large frames" in warnings[0]


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize("kind", ["corrupt", "wrong architecture"])
def test_bad_weights_end_the_start_with_one_line_naming_the_file(tmp_path, data_dir, kind):
    import torch

    from espnet_ros.models import create_model
    path = tmp_path / "weights.pth"
    if kind == "corrupt":
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 500)
    else:
        torch.save(create_model("enet", pretrained=False)[0].state_dict(), str(path))
    node = NodeProcess("/hostile_weights", dict(SMALL, weights=str(path)), tmp_path)
    code = node.proc.wait(timeout=180)
    node.stop()
    assert code == 1, node.log()
    errors = [line for line in node.log().splitlines() if "failed to start" in line]
    assert len(errors) == 1 and str(path) in errors[0], node.log()
    assert "Traceback" not in node.log() and "weights_only" not in node.log()
    if kind == "wrong architecture":
        assert "first" in errors[0] and MODEL in errors[0] and "ESPNet" in errors[0]
