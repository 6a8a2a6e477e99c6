"""The node's class map (~/label_info, latched for late subscribers) and ~/confidence."""
import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed")

from rosutil import NodeProcess, Probe, padded_image, stamp  # noqa: E402

from espnet_ros.messages.decode import image_array  # noqa: E402
from espnet_ros.models import zoo  # noqa: E402
from espnet_ros.ros.env import localhost_env  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
PARAMS = {"model": MODEL, "input_width": 128, "input_height": 64, "warmup_frames": 1,
          "publish_confidence": True, "confidence_encoding": "32FC1"}

LATE_SUBSCRIBER = textwrap.dedent("""
    import json, sys, time
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import LabelInfo
    rclpy.init()
    node = rclpy.create_node("late_label_info_reader")
    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(LabelInfo, sys.argv[1], got.append, qos)
    end = time.monotonic() + 60
    while not got and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps([[c.class_id, c.class_name] for c in got[0].class_map] if got else None))
""")


def _late_class_map(topic):
    """The class map a process that starts now receives (published before it existed)."""
    result = subprocess.run([sys.executable, "-c", LATE_SUBSCRIBER, topic], env=localhost_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe():
    from espnet_ros.ros.env import apply_localhost_env
    apply_localhost_env()
    rclpy.init()
    node = rclpy.create_node("espnet_outputs_probe")
    yield Probe(node)
    node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def node(tmp_path_factory, probe, data_dir):
    from sensor_msgs.msg import Image
    proc = NodeProcess("/test_out", PARAMS, tmp_path_factory.mktemp("node_out"))
    probe.subscribe(Image, proc.base + "/label")
    probe.subscribe(Image, proc.base + "/confidence")
    proc.image_pub = probe.node.create_publisher(Image, "/test_out/image", 5)
    assert probe.spin_until(lambda: "serving" in proc.log(), 180), proc.log()
    yield proc
    assert proc.stop() == 0, proc.log()


def test_label_info_reaches_a_subscriber_that_joins_later_and_follows_a_model_change(probe, node):
    expected = [[i, name] for i, name in enumerate(zoo.get(MODEL).classes)]
    assert expected[-1] == [19, "void"]  # void included
    assert _late_class_map(node.base + "/label_info") == expected
    result = probe.set_parameters(node.base, model="espnet-p2q8-camvid")[0]
    assert result.successful, result.reason
    camvid = [[i, name] for i, name in enumerate(zoo.get("espnet-p2q8-camvid").classes)]
    assert _late_class_map(node.base + "/label_info") == camvid
    assert probe.set_parameters(node.base, model=MODEL)[0].successful


def test_confidence_is_a_32fc1_image_beside_each_label_when_asked(probe, node, city_frame):
    """confidence_encoding: 32FC1 (the default, mono8, is tested in test_node_nav2.py)."""
    frame = cv2.resize(city_frame, (256, 128), interpolation=cv2.INTER_AREA)
    labels = probe.received[node.base + "/label"]
    confidences = probe.received[node.base + "/confidence"]

    def answered():
        return any(m.header.stamp.sec == 7000 for _, m in labels) and \
            any(m.header.stamp.sec == 7000 for _, m in confidences)

    for _ in range(30):  # best-effort input: resend until answered
        node.image_pub.publish(padded_image(frame, "bgr8", stamp_msg=stamp(7000)))
        if probe.spin_until(answered, 2.0):
            break
    assert answered(), node.log()
    conf = [m for _, m in confidences if m.header.stamp.sec == 7000][-1]
    label = [m for _, m in labels if m.header.stamp.sec == 7000][-1]
    assert conf.encoding == "32FC1" and (conf.width, conf.height) == (label.width, label.height)
    values = image_array(conf)
    assert values.dtype == np.float32
    assert (values > 1.0 / 20 - 1e-6).all() and (values <= 1.0 + 1e-6).all()
