"""Arrays to image messages: every message the project writes.

``image_message``, ``compressed_message``, ``frame_message``, ``camera_info_message`` and
``ImageWriter`` build the node's outputs, the camera source's frames and the frames of
``bag make``. The classes come from a ``MessageKit``: rclpy's (``rclpy_kit``) or a rosbags
typestore's (``espnet_ros.bag.io.bag_kit``), so this module needs neither.
"""
import array
import sys
from typing import Callable, NamedTuple

import cv2
import numpy as np

from .decode import LAYOUTS

__all__ = [
    "MessageKit",
    "rclpy_kit",
    "header",
    "image_message",
    "compressed_message",
    "frame_message",
    "camera_info_message",
    "ImageWriter",
    "write_pixels",
]


class MessageKit(NamedTuple):
    """The message classes to write, and how a uint8 array becomes their ``data`` field."""
    Image: type
    CompressedImage: type
    CameraInfo: type
    Header: type
    Time: type
    RegionOfInterest: type
    data: Callable  # contiguous uint8 ndarray -> what the class stores in ``data``


def _array_data(pixels):
    # array('B') is the type rclpy stores; built from bytes it skips the per-element check.
    return array.array("B", np.ascontiguousarray(pixels).tobytes())


def rclpy_kit():
    """The rclpy message classes (sensor_msgs, std_msgs, builtin_interfaces)."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
    from std_msgs.msg import Header
    return MessageKit(Image, CompressedImage, CameraInfo, Header, Time, RegionOfInterest,
                      _array_data)


def header(kit, stamp_ns, frame_id):
    """A Header with the stamp in integer nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), 10 ** 9)
    return kit.Header(stamp=kit.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


# (channel order of the given pixels, encoding) -> cv2 conversion
_CONVERSIONS = {
    ("bgr", "rgb8"): cv2.COLOR_BGR2RGB, ("bgr", "bgra8"): cv2.COLOR_BGR2BGRA,
    ("bgr", "rgba8"): cv2.COLOR_BGR2RGBA, ("bgr", "mono8"): cv2.COLOR_BGR2GRAY,
    ("rgb", "bgr8"): cv2.COLOR_RGB2BGR, ("rgb", "bgra8"): cv2.COLOR_RGB2BGRA,
    ("rgb", "rgba8"): cv2.COLOR_RGB2RGBA, ("rgb", "mono8"): cv2.COLOR_RGB2GRAY,
}


def _as_encoding(pixels, encoding, order, out=None):
    """``pixels`` (HxW or HxWx3 in ``order``) in the layout of ``encoding`` (into ``out``)."""
    if encoding not in LAYOUTS:
        raise ValueError("cannot write image encoding '%s'; supported: %s"
                         % (encoding, ", ".join(sorted(LAYOUTS))))
    channels, dtype = LAYOUTS[encoding]
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and (channels != 3 or encoding[:3] != order):
        code = _CONVERSIONS.get((order, encoding))
        if code is None:
            raise ValueError("cannot convert %s pixels to '%s'" % (order, encoding))
        return cv2.cvtColor(pixels, code, dst=out)
    shape_ok = pixels.ndim == 2 if channels == 1 else (
        pixels.ndim == 3 and pixels.shape[2] == channels)
    if not shape_ok or pixels.dtype != np.dtype(dtype):
        raise ValueError("expected %s pixels for '%s', got shape %s dtype %s"
                         % ("HxW" if channels == 1 else "HxWx%d" % channels, encoding,
                            pixels.shape, pixels.dtype))
    if out is None:
        return np.ascontiguousarray(pixels)
    out[...] = pixels
    return out


def write_pixels(out, pixels, encoding, order="bgr"):
    """Converts ``pixels`` (HxW, or HxWx3 in ``order``) into ``out``, laid out as ``encoding``
    (e.g. an ``ImageWriter`` buffer); returns ``out``."""
    result = _as_encoding(pixels, encoding, order, out)
    if result is not out:
        raise ValueError("%s pixels of shape %s do not fit a %s buffer of shape %s"
                         % (order, np.shape(pixels), encoding, out.shape))
    return out


def image_message(kit, header_msg, pixels, encoding, order="bgr"):
    """An Image of ``pixels`` (HxW, or HxWx3 in channel ``order``) in ``encoding``.

    Rows are unpadded; multi-byte values are written in this machine's byte order.
    """
    pixels = _as_encoding(pixels, encoding, order)
    return kit.Image(header=header_msg, height=int(pixels.shape[0]), width=int(pixels.shape[1]),
                     encoding=encoding, is_bigendian=int(sys.byteorder == "big"),
                     step=int(pixels.strides[0]), data=kit.data(pixels.reshape(-1).view(np.uint8)))


def compressed_message(kit, header_msg, bgr, fmt="jpeg"):
    """A CompressedImage of a BGR image as jpeg or png."""
    if fmt not in ("jpeg", "png"):
        raise ValueError("compressed format must be jpeg or png, got %r" % (fmt,))
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr)
    if not ok:
        raise ValueError("cannot encode a %dx%d frame as %s" % (bgr.shape[1], bgr.shape[0], fmt))
    return kit.CompressedImage(header=header_msg, format=fmt, data=kit.data(data.reshape(-1)))


def frame_message(kit, header_msg, bgr, encoding):
    """A camera frame as a camera publishes it: raw in ``encoding``, or compressed (jpeg, png)."""
    if encoding in ("jpeg", "png"):
        return compressed_message(kit, header_msg, bgr, encoding)
    return image_message(kit, header_msg, bgr, encoding, "bgr")


def camera_info_message(kit, header_msg, width, height):
    """A plain pinhole camera_info (focal length = width, centred) for sources that carry none."""
    f, cx, cy = float(width), width / 2.0, height / 2.0
    return kit.CameraInfo(
        header=header_msg, height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array([f, 0, cx, 0, f, cy, 0, 0, 1], float),
        r=np.eye(3).ravel(), p=np.array([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0], float),
        binning_x=0, binning_y=0,
        roi=kit.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


class ImageWriter:
    """One outgoing rclpy Image whose pixel buffer is exposed as an array to render into.

    ``pixels(h, w)`` returns a writable view of the message's own ``data`` (allocated anew
    only when the size changes), so a frame is painted once and handed to ``publish``
    without intermediate copies. rclpy copies the message during ``publish``; the buffer is
    free again when it returns.
    """

    def __init__(self, image_cls, encoding):
        if encoding not in LAYOUTS:
            raise ValueError("cannot write image encoding '%s'" % encoding)
        self.msg = image_cls()
        self.msg.encoding = encoding
        self.msg.is_bigendian = int(sys.byteorder == "big")
        self._channels, self._dtype = LAYOUTS[encoding]
        self._view = None

    def pixels(self, height, width):
        if self._view is None or self._view.shape[:2] != (height, width):
            self._view = None  # release the old buffer before making the new one
            itemsize = np.dtype(self._dtype).itemsize
            row = width * self._channels * itemsize
            self.msg.height, self.msg.width, self.msg.step = int(height), int(width), int(row)
            self.msg.data = array.array("B", bytes(row * height))
            shape = (height, width) if self._channels == 1 else (height, width, self._channels)
            self._view = np.frombuffer(self.msg.data, self._dtype).reshape(shape)
        return self._view

    def message(self, header_msg):
        self.msg.header = header_msg
        return self.msg
