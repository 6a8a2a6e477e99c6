"""A camera stand-in: publishes real frames from an image folder, a video or a rosbag.

``espnet-ros camera SOURCE`` publishes sensor_msgs/Image (or CompressedImage) stamped with the
publish time, looped at a fixed rate, plus an optional matching camera_info.
"""
import itertools
import time
from pathlib import Path

import cv2

from ..bag.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, SourceError, folder_frames, image_frame, video_frames


def bag_frames(path, topic=None):
    """BGR frames of the first image topic (or ``topic``) of a rosbag2 folder or file.

    Read through the bag tools' reader, so a damaged bag fails here as it does there.
    """
    from ..bag.io import BagError, BagReader, decode_image, iter_frames

    try:
        with BagReader(path) as bag:
            topics = bag.choose_topics(image_topic=topic)
            for _stamp, msg, _ in iter_frames(bag, topics, with_labels=False):
                yield decode_image(msg, topics.image_type)
    except BagError as exc:
        raise SourceError(str(exc)) from exc


def open_source(source, topic=None):
    """A function returning a fresh frame iterator (so sources can loop)."""
    path = Path(source)
    if path.is_dir() and (path / "metadata.yaml").is_file():
        return lambda: bag_frames(path, topic)
    if path.is_dir():
        return lambda: folder_frames(path)
    if path.suffix.lower() in (".mcap", ".db3"):
        return lambda: bag_frames(path, topic)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return lambda: video_frames(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return lambda: image_frame(path)
    raise SourceError("unknown source %s: expected an image folder, a video or a rosbag" % source)


def frames(source, loop=True, size=None, topic=None):
    """Frames of ``source`` (resized to ``size`` = (w, h) if given), repeated when ``loop``."""
    make = open_source(source, topic)
    passes = itertools.count() if loop else range(1)
    for _ in passes:
        empty = True
        for image in make():
            empty = False
            yield image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if empty:
            raise SourceError("source %s has no frames" % source)


def image_message(kit, image, encoding, stamp, frame_id):
    """The frame as the camera publishes it: raw in ``encoding`` or compressed (jpeg, png)."""
    from ..messages.encode import frame_message

    head = kit.Header(stamp=stamp, frame_id=frame_id)
    try:
        return frame_message(kit, head, image, encoding)
    except ValueError as exc:
        raise SourceError(str(exc)) from exc


def run_camera(source, rate=10.0, encoding="bgr8", topic="image", frame_id="camera",
               loop=True, count=0, size=None, camera_info=True, reliable=False, bag_topic=None,
               node_name="espnet_camera"):
    """Publishes frames until ``count`` (0: forever, or the source's end when not looping).

    SIGINT and SIGTERM stop it cleanly (see shutdown.py); returns the number of frames sent.
    """
    import rclpy

    from ..messages import encode
    from ..ros.env import apply_localhost_env
    from ..ros.shutdown import StopRequested, init_ros, shutdown_ros

    apply_localhost_env()
    compressed = encoding in ("jpeg", "png")
    stop = init_ros()
    node = None
    sent = 0
    try:
        kit = encode.rclpy_kit()
        with stop.interrupting():
            node, pub, info_pub = _camera_node(kit, node_name, topic, compressed, camera_info,
                                               reliable)
        period = 1.0 / rate if rate > 0 else 0.0
        next_time = time.monotonic()
        for image in frames(source, loop, size, bag_topic):
            if stop.requested.is_set():
                break
            stamp = node.get_clock().now().to_msg()
            pub.publish(image_message(kit, image, encoding, stamp, frame_id))
            if info_pub is not None:
                info_pub.publish(encode.camera_info_message(
                    kit, kit.Header(stamp=stamp, frame_id=frame_id), image.shape[1],
                    image.shape[0]))
            sent += 1
            if count and sent >= count:
                break
            next_time += period
            rclpy.spin_once(node, timeout_sec=0)
            delay = next_time - time.monotonic()
            if delay > 0:
                stop.requested.wait(delay)
            else:
                next_time = time.monotonic()
    except StopRequested:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        node = pub = info_pub = None  # freed in shutdown_ros, with the DDS participant
        shutdown_ros()
    return sent


def _camera_node(kit, node_name, topic, compressed, camera_info, reliable):
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    node = rclpy.create_node(node_name)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE if reliable
                     else ReliabilityPolicy.BEST_EFFORT)
    image_topic = topic + "/compressed" if compressed and not topic.endswith("compressed") else topic
    pub = node.create_publisher(kit.CompressedImage if compressed else kit.Image, image_topic, qos)
    info_pub = node.create_publisher(kit.CameraInfo, "camera_info", qos) if camera_info else None
    return node, pub, info_pub
