"""The contract of nav2's semantic_segmentation_layer, written from what that layer reads.

The layer (kiwicampus/semantic_segmentation_layer) synchronizes the mask, the confidence and
an aligned point cloud with an exact-time synchronizer, indexes the mask and the confidence
pixel by pixel against the cloud (so all must have the camera's width and height: the point
cloud's), reads the mask as class ids (mono8) and the confidence as one byte per pixel (mono8,
0..255), and maps class ids to the names in its config through vision_msgs/LabelInfo received
with reliable, transient-local QoS (it may subscribe after the node published it).
"""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed")

from rosutil import NodeProcess, late_class_map, padded_image, stamp  # noqa: E402

from espnet_ros.messages.decode import decode, image_array  # noqa: E402
from espnet_ros.messages.encode import camera_info_message, rclpy_kit  # noqa: E402

MODEL = "espnet-p2q3-cityscapes"
SIZE = (256, 128)
# The defaults a nav2 user gets, plus the outputs the layer reads.
PARAMS = {"model": MODEL, "input_width": SIZE[0], "input_height": SIZE[1], "warmup_frames": 1,
          "publish_confidence": True, "use_camera_info": True, "threads": 1}

def test_label_confidence_and_camera_info_for_one_frame_match_as_the_layer_needs(
        probe, tmp_path, city_frame):
    import cv2
    import torch
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from espnet_ros.inference import Pipeline
    from espnet_ros.inference.resize import resize_to
    frame = cv2.resize(city_frame, (320, 160), interpolation=cv2.INTER_AREA)
    node = NodeProcess("/nav", PARAMS, tmp_path)
    base = node.base
    try:
        # The layer subscribes with the sensor-data QoS (best effort): it must match.
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        got = {name: [] for name in ("label", "confidence", "camera_info")}
        for name in got:
            probe.node.create_subscription(CameraInfo if name == "camera_info" else Image,
                                           base + "/" + name, got[name].append, best_effort)
        image_pub = probe.node.create_publisher(Image, "/nav/image", 5)
        info_pub = probe.node.create_publisher(CameraInfo, "/nav/camera_info", 5)
        kit = rclpy_kit()
        msg = padded_image(frame, "bgr8", stamp_msg=stamp(4242, 17), frame_id="nav_cam")
        info = camera_info_message(kit, msg.header, 320, 160)

        def complete():
            return all(any(m.header.stamp.sec == 4242 for m in got[n]) for n in got)

        for _ in range(60):
            info_pub.publish(info)
            image_pub.publish(msg)
            if probe.spin_until(complete, 1.0):
                break
        assert complete(), node.log()
        out = {n: [m for m in got[n] if m.header.stamp.sec == 4242][-1] for n in got}
        # One stamp, one frame_id, one size: the layer's exact-time synchronizer and its
        # pixel-by-pixel indexing against the cloud (the camera's size) both hold.
        for name, m in out.items():
            assert (m.header.stamp.sec, m.header.stamp.nanosec) == (4242, 17), name
            assert m.header.frame_id == "nav_cam", name
            assert (m.width, m.height) == (320, 160), name
        assert out["label"].encoding == "mono8" and out["confidence"].encoding == "mono8"
        labels = image_array(out["label"])
        confidence = image_array(out["confidence"])

        # The same forward here, on the node's thread count: the mono8 confidence is
        # round(255 * max probability), nearest-upsampled like the labels.
        torch.set_num_threads(1)
        pipeline = Pipeline.build(MODEL, input_size=SIZE)
        inferred = pipeline.infer(decode(msg).pixels, "bgr", confidence=True)
        expected = pipeline.render(frame, inferred, "bgr")
        assert (labels == expected.labels).all()
        want = np.rint(255 * inferred.probability).astype(np.uint8)
        want = resize_to(want, (320, 160))  # the labels' nearest rule
        assert (confidence == want).all(), np.abs(confidence.astype(int) - want).max()
        assert confidence.min() >= round(255 / 20)  # max of 20 probabilities >= 1/20

        # A layer that starts now still receives the class map, and it names every class id
        # that appears in the mask.
        # The layer's QoS for labels_topic: reliable, transient local, depth 5.
        class_map = late_class_map(base + "/label_info", depth=5)
        assert set(np.unique(labels).tolist()) <= set(class_map)
        assert class_map[19] == "void" and class_map[0] == "road"
    finally:
        assert node.stop() == 0, node.log()
