"""The node's class map (~/label_info, latched for late subscribers) and ~/confidence."""

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed")

from rosutil import NodeProcess, late_class_map, padded_image, stamp  # noqa: E402

from espnet_ros.messages.decode import image_array  # noqa: E402
from espnet_ros.models import zoo  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
PARAMS = {"model": MODEL, "input_width": 128, "input_height": 64, "warmup_frames": 1,
          "publish_confidence": True, "confidence_encoding": "32FC1"}

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
    expected = dict(enumerate(zoo.get(MODEL).classes))
    assert max(expected) == 19 and expected[19] == "void"  # void included
    assert late_class_map(node.base + "/label_info", depth=1) == expected
    result = probe.set_parameters(node.base, model="espnet-p2q8-camvid")[0]
    assert result.successful, result.reason
    camvid = dict(enumerate(zoo.get("espnet-p2q8-camvid").classes))
    assert late_class_map(node.base + "/label_info", depth=1) == camvid
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
