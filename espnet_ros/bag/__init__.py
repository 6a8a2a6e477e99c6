"""Rosbag2 tools: build bags from datasets, replay them through the live node, evaluate offline.

``espnet-ros bag make`` writes a bag (mcap or sqlite3, metadata version 8 or 9) with these
topics, all with the same header stamps per frame:

    /camera/image             sensor_msgs/Image (or /camera/image/compressed, CompressedImage)
    /camera/camera_info       sensor_msgs/CameraInfo
    /camera/label_gt          sensor_msgs/Image mono8: train ids, 255 = not scored (when labels exist)

``bag eval`` runs the node's segmenter over the bag's frames with no ROS graph. Reading and
writing use the pure-Python ``rosbags`` library; nothing here needs rclpy. ``bag replay``, which
plays a bag into a live ``segment_node``, is a tool: ``espnet_ros.tools.bag_replay``.
"""
from .io import IMAGE_TOPIC, INFO_TOPIC, LABEL_TOPIC, BagError

__all__ = ["BagError", "IMAGE_TOPIC", "INFO_TOPIC", "LABEL_TOPIC"]
