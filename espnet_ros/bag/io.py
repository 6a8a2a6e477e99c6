"""Reading and writing rosbag2 files with ``rosbags`` (no ROS install needed).

Messages are (de)serialized with a rosbags typestore; its CDR is ROS 2's own (the tests check
both directions against ``rclpy.serialization``). Every failure a user can cause (missing or
corrupt file, missing topic, bad message) surfaces as one :class:`BagError` line.
"""
import contextlib
import shutil
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

IMAGE_TOPIC = "/camera/image"
COMPRESSED_TOPIC = "/camera/image/compressed"
INFO_TOPIC = "/camera/camera_info"
LABEL_TOPIC = "/camera/label_gt"

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)

STORAGES = ("mcap", "sqlite3")
VERSIONS = (8, 9)  # 8 opens in ROS 2 Humble; 9 (Jazzy and later) changed the QoS metadata layout
IGNORE = 255       # label_gt value for pixels that are not scored


class BagError(Exception):
    """A bag that cannot be used as asked; the text is one line naming the bag and the problem."""


@lru_cache(maxsize=1)
def typestore():
    from rosbags.typesys import Stores, get_typestore
    # sensor_msgs definitions (and hashes) are identical from Humble to Kilted.
    return get_typestore(Stores.ROS2_KILTED)


def split_ns(ns):
    return int(ns) // 10 ** 9, int(ns) % 10 ** 9


def stamp_ns(header):
    return int(header.stamp.sec) * 10 ** 9 + int(header.stamp.nanosec)


def bag_kit():
    """The message classes from the typestore (messages rosbags can serialize)."""
    from ..messages.encode import MessageKit

    types = typestore().types
    return MessageKit(types[IMAGE_TYPE], types[COMPRESSED_TYPE], types[CAMERA_INFO_TYPE],
                      types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"],
                      types["sensor_msgs/msg/RegionOfInterest"],
                      lambda pixels: np.ascontiguousarray(pixels, np.uint8).reshape(-1))


# ------------------------------------------------------------------------------- message builders
def image_message(bgr, encoding, stamp, frame_id):
    """A typestore Image (bgr8, rgb8, mono8, ...) or CompressedImage (jpeg, png) of ``bgr``."""
    from ..messages import encode

    kit = bag_kit()
    head = encode.header(kit, stamp, frame_id)
    try:
        return encode.frame_message(kit, head, bgr, encoding)
    except ValueError as exc:
        raise BagError(str(exc)) from exc


def label_message(label, stamp, frame_id):
    from ..messages import encode

    kit = bag_kit()
    return encode.image_message(kit, encode.header(kit, stamp, frame_id), label, "mono8")


def camera_info_message(width, height, stamp, frame_id):
    from ..messages import encode

    kit = bag_kit()
    return encode.camera_info_message(kit, encode.header(kit, stamp, frame_id), width, height)


def label_array(msg, topic=LABEL_TOPIC):
    """HxW uint8 of a mono8 label image (row padding dropped)."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise BagError("label topic %s has encoding %r; expected mono8" % (topic, msg.encoding))
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data,
                         np.uint8)
    if step < width or data.size < step * height:
        raise BagError("label on %s (%dx%d, step %d) is truncated: %d bytes"
                       % (topic, width, height, step, data.size))
    return data[:step * height].reshape(height, step)[:, :width]


def decode_image(msg, msgtype):
    """BGR pixels of an Image / CompressedImage, as the node decodes them."""
    from ..messages.decode import compressed_to_bgr, image_to_bgr
    return compressed_to_bgr(msg) if msgtype == COMPRESSED_TYPE else image_to_bgr(msg)


# ------------------------------------------------------------------------------- writing
def default_qos():
    """What a camera driver typically offers: reliable, volatile, keep last 10, no deadlines."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )
    unset = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
               unset, unset, QosLiveliness.AUTOMATIC, unset, False)


class BagWriter:
    """A rosbag2 being written; ``with BagWriter(path) as bag: bag.write(topic, ns, msg)``."""

    def __init__(self, path, storage="mcap", version=8, overwrite=False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError("storage must be one of %s, got %r" % (", ".join(STORAGES), storage))
        if int(version) not in VERSIONS:
            raise BagError("bag metadata version must be one of %s, got %r"
                           % (", ".join(map(str, VERSIONS)), version))
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError("%s exists already (pass --overwrite to replace it)" % self.path)
            if self.path.is_dir() and not (self.path / "metadata.yaml").is_file() \
                    and any(self.path.iterdir()):
                raise BagError("%s is a non-empty folder that is not a bag; not replacing it"
                               % self.path)
            shutil.rmtree(str(self.path)) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=int(version), storage_plugin=plugin)
        self._connections = {}
        self.counts = {}

    def __enter__(self):
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._writer.close()
        else:  # leave no half-written bag that looks complete
            with contextlib.suppress(Exception):
                self._writer.abort()
            shutil.rmtree(str(self.path), ignore_errors=True)
        return False

    def set_custom_data(self, key, value):
        self._writer.set_custom_data(key, str(value))

    def add_topic(self, topic, msgtype, msgdef=None, rihs01=None, qos=None):
        if topic in self._connections:
            return self._connections[topic]
        kwargs = dict(msgdef=msgdef, rihs01=rihs01) if msgdef else dict(typestore=typestore())
        conn = self._writer.add_connection(topic, msgtype, offered_qos_profiles=[qos or default_qos()],
                                           **kwargs)
        self._connections[topic] = conn
        self.counts[topic] = 0
        return conn

    def write(self, topic, log_ns, msg, msgtype=None):
        """Writes a typestore message (serialized here) or ready CDR ``bytes``."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            raw = msg
        else:
            msgtype = msgtype or msg.__msgtype__
            raw = typestore().serialize_cdr(msg, msgtype)
        if topic not in self._connections:
            self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(log_ns), raw)
        self.counts[topic] += 1


# ------------------------------------------------------------------------------- reading
class BagTopics(NamedTuple):
    image: str
    image_type: str
    camera_info: Optional[str]
    label: Optional[str]


class BagReader:
    """An open bag: topics, lazily read messages; every read error becomes a BagError."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if not self.path.exists():
            raise BagError("bag %s does not exist" % self.path)
        try:
            # Bags from older recorders hold no message definitions: fall back to stock ones.
            self.reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            self.reader.open()
        except Exception as exc:  # rosbags, sqlite3, mcap and yaml errors alike
            raise BagError("cannot open bag %s (corrupt, truncated or not a rosbag2?): %s"
                           % (self.path, _reason(exc))) from exc
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self.reader.close()
        return False

    @property
    def topics(self):
        """{topic: msgtype}."""
        return {c.topic: c.msgtype for c in self.reader.connections}

    @property
    def custom_data(self):
        # rosbags exposes it only on the storage's metadata; bare .mcap/.db3 files have none.
        metadata = getattr(getattr(self.reader.readers[0], "storage", None), "metadata", None)
        return dict(getattr(metadata, "custom", None) or {})

    def message_count(self, topic):
        return sum(c.msgcount for c in self.reader.connections if c.topic == topic)

    def choose_topics(self, image_topic=None, label_topic=None, need_label=False):
        """The image, camera_info and ground-truth topics to use (explicit ones checked)."""
        topics = self.topics
        listing = ", ".join("%s (%s)" % kv for kv in sorted(topics.items())) or "none"
        image_topic = image_topic or _default_image_topic(topics)
        if image_topic is None or topics.get(image_topic) not in IMAGE_TYPES:
            what = ("image topic %s" % image_topic) if image_topic else "image topic"
            raise BagError("bag %s has no %s; its topics: %s (pick one with --image-topic)"
                           % (self.path, what, listing))
        explicit = label_topic is not None
        label_topic = label_topic or LABEL_TOPIC
        if topics.get(label_topic) != IMAGE_TYPE:
            if explicit or need_label:
                raise BagError("bag %s has no ground-truth label topic %s (sensor_msgs/Image "
                               "mono8); its topics: %s" % (self.path, label_topic, listing))
            label_topic = None
        if label_topic == image_topic:
            raise BagError("the image and label topics are both %s" % image_topic)
        info_topic = _sibling_camera_info(image_topic, topics)
        if self.message_count(image_topic) == 0:
            raise BagError("image topic %s of bag %s holds no messages" % (image_topic, self.path))
        return BagTopics(image_topic, topics[image_topic], info_topic, label_topic)

    def messages(self, topics):
        """(topic, msgtype, log time ns, raw CDR) in log-time order.

        Read to the end, the counts per topic must match the bag's index: the mcap reader skips
        records it cannot parse without a word, which would hide a damaged file.
        """
        conns = [c for c in self.reader.connections if c.topic in set(topics)]
        iterator = self.reader.messages(connections=conns)
        seen = {c.topic: 0 for c in conns}
        while True:
            try:
                conn, log_ns, raw = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                raise BagError("cannot read bag %s (corrupt or truncated?): %s"
                               % (self.path, _reason(exc))) from exc
            seen[conn.topic] += 1
            yield conn.topic, conn.msgtype, log_ns, raw
        for topic, count in seen.items():
            expected = self.message_count(topic)
            if count != expected:
                raise BagError("bag %s is corrupt or truncated: read %d of the %d messages its index "
                               "lists on %s" % (self.path, count, expected, topic))

    def deserialize(self, raw, msgtype, topic=""):
        try:
            return self.reader.deserialize(raw, msgtype)
        except Exception as exc:
            raise BagError("corrupt %s message on %s in bag %s: %s"
                           % (msgtype, topic, self.path, _reason(exc))) from exc


def _default_image_topic(topics):
    for name in (IMAGE_TOPIC, COMPRESSED_TOPIC):
        if topics.get(name) in IMAGE_TYPES:
            return name
    candidates = sorted(t for t, ty in topics.items() if ty in IMAGE_TYPES and t != LABEL_TOPIC)
    # Prefer raw over compressed: a recorder often stores both for one camera.
    raw = [t for t in candidates if topics[t] == IMAGE_TYPE]
    if len(raw) == 1:
        return raw[0]
    return candidates[0] if len(candidates) == 1 else None


def _sibling_camera_info(image_topic, topics):
    """The camera_info next to an image topic (``/a/image_raw[/compressed]`` -> ``/a/camera_info``)."""
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    candidate = base.rsplit("/", 1)[0] + "/camera_info"
    if topics.get(candidate) == CAMERA_INFO_TYPE:
        return candidate
    infos = [t for t, ty in topics.items() if ty == CAMERA_INFO_TYPE]
    return infos[0] if len(infos) == 1 else None


def _reason(exc):
    text = " ".join(str(exc).split()) or "no details"
    return "%s: %s" % (type(exc).__name__, text[:300])


def iter_frames(bag, topics, with_labels=True, max_waiting=64):
    """(stamp ns, image msg, ground-truth HxW uint8 or None) per image, paired by header stamp.

    Images and labels may come in either order in the bag. An image whose label has not come
    after ``max_waiting`` later images (or by the end) is yielded without one.
    """
    wanted = [topics.image] + ([topics.label] if with_labels and topics.label else [])
    images, labels = {}, {}  # stamp -> waiting message; dicts keep insertion order
    for topic, msgtype, _, raw in bag.messages(wanted):
        msg = bag.deserialize(raw, msgtype, topic)
        stamp = stamp_ns(msg.header)
        if len(wanted) == 1:
            yield stamp, msg, None
        elif topic == topics.image:
            if stamp in labels:
                yield stamp, msg, labels.pop(stamp)
                continue
            images[stamp] = msg
            if len(images) > max_waiting:
                oldest = next(iter(images))
                yield oldest, images.pop(oldest), None
        else:
            label = label_array(msg, topic)
            if stamp in images:
                yield stamp, images.pop(stamp), label
            else:
                labels[stamp] = label
                if len(labels) > max_waiting:  # labels of images that never come
                    labels.pop(next(iter(labels)))
    for stamp, msg in images.items():
        yield stamp, msg, None


def segmentation_info_msgdef():
    """(msgdef, rihs01) of espnet_ros/msg/SegmentationInfo for the output bag's schema."""
    from rosbags.typesys import get_types_from_msg

    name = "espnet_ros/msg/SegmentationInfo"
    store = typestore()
    if name not in store.types:
        store.register(get_types_from_msg(_segmentation_info_text(), name))
    return store.generate_msgdef(name, ros_version=2)[0], store.hash_rihs01(name)


def _segmentation_info_text():
    candidates = [Path(__file__).resolve().parents[2] / "msg" / "SegmentationInfo.msg"]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory("espnet_ros")) / "msg" / "SegmentationInfo.msg")
    except Exception:  # no ament index (pip install): the source tree's copy or nothing
        pass
    for path in candidates:
        if path.is_file():
            return path.read_text()
    raise BagError("msg/SegmentationInfo.msg not found (looked in %s)" % ", ".join(map(str, candidates)))
