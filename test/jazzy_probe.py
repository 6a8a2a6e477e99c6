"""Drives the node from a ROS 2 Jazzy Python (run by test_jazzy.py with .venv-jazzy's python):
sends a bgr8 frame until ~/label answers with the same header, waits for the node's
/diagnostics, and prints what it saw as one JSON line.

Usage: jazzy_probe.py NAMESPACE TIMEOUT_S
"""
import json
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main(namespace, timeout):
    rclpy.init()
    node = rclpy.create_node("espnet_jazzy_probe")
    labels, diagnostics = [], []
    node.create_subscription(Image, namespace + "/espnet_segmentation/label", labels.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
    pub = node.create_publisher(Image, namespace + "/image", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    frame = Image(height=96, width=128, encoding="bgr8", step=128 * 3)
    frame.data = np.random.default_rng(0).integers(0, 256, 96 * 128 * 3, np.uint8).tobytes()
    frame.header.frame_id = "jazzy_cam"
    frame.header.stamp.sec, frame.header.stamp.nanosec = 4242, 17

    def ours(array):
        return any(node_name in s.name for s in array.status)

    node_name = namespace.strip("/") + "/espnet_segmentation:"
    end, next_send = time.monotonic() + timeout, 0.0
    while time.monotonic() < end and not (labels and any(map(ours, diagnostics))):
        if not labels and time.monotonic() >= next_send:
            pub.publish(frame)
            next_send = time.monotonic() + 1.0
        rclpy.spin_once(node, timeout_sec=0.1)
    label = labels[0] if labels else None
    print(json.dumps({
        "label_header": None if label is None else [label.header.stamp.sec,
                                                    label.header.stamp.nanosec,
                                                    label.header.frame_id],
        "label_size": None if label is None else [label.width, label.height, label.encoding],
        "diagnostics": sorted({s.name for d in diagnostics for s in d.status
                               if node_name in s.name}),
        "rclpy": __import__("importlib.metadata").metadata.version("ros-jazzy-rclpy")}))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
