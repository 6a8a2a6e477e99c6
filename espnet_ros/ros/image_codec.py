"""Convert ROS image messages to and from NumPy arrays without rclpy or cv_bridge.

Messages are duck-typed: anything with the attributes of ``sensor_msgs/Image`` (``height``,
``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``) or ``sensor_msgs/CompressedImage``
(``format``, ``data``) works.

``image_to_bgr`` returns what ``cv_bridge.imgmsg_to_cv2(msg, 'bgr8')`` returns: the same OpenCV
colour codes (including cv_bridge's Bayer mapping, whose OpenCV names are offset from the ROS
ones) and the same 16 to 8 bit scaling (``round(v * 255 / 65535)``, which differs from ``v >> 8``
by at most 1).

Overlays are published in the input encoding when it is ``rgb8``, ``bgr8``, ``rgba8`` or
``bgra8``. Every other input (``mono8``, ``mono16``, YUV, Bayer) gets a ``bgr8`` overlay: a
coloured segmentation overlay cannot be stored in a grey or mosaicked image without losing the
class colours, and re-encoding to YUV/Bayer would cost time for no viewer benefit.
"""
import array

import cv2
import numpy as np

__all__ = [
    "ImageDecodeError",
    "SUPPORTED_ENCODINGS",
    "image_to_bgr",
    "compressed_to_bgr",
    "overlay_encoding_for",
    "bgr_to_image_fields",
    "fill_image_msg",
]


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into a BGR array; the text is one line."""


# "uyvy"/"yuyv" are the newer sensor_msgs names of "yuv422"/"yuv422_yuy2".
_BYTES_PER_PIXEL = {
    "bgr8": 3,
    "rgb8": 3,
    "bgra8": 4,
    "rgba8": 4,
    "mono8": 1,
    "mono16": 2,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
}

# Same codes cv_bridge uses; OpenCV names a Bayer pattern by the 2x2 block starting at (1, 1).
_CVT_CODES = {
    "rgb8": cv2.COLOR_RGB2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
    "mono16": cv2.COLOR_GRAY2BGR,
    "yuv422": cv2.COLOR_YUV2BGR_UYVY,
    "uyvy": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    "yuyv": cv2.COLOR_YUV2BGR_YUY2,
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR,
    "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR,
    "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
}

SUPPORTED_ENCODINGS = tuple(sorted(_BYTES_PER_PIXEL))

_OVERLAY_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")

_FROM_BGR_CODES = {
    "bgr8": None,
    "rgb8": cv2.COLOR_BGR2RGB,
    "bgra8": cv2.COLOR_BGR2BGRA,
    "rgba8": cv2.COLOR_BGR2RGBA,
    "mono8": cv2.COLOR_BGR2GRAY,
}


def _byte_buffer(data):
    """Expose message data as a flat uint8 array, sharing memory when the type allows it."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        return np.asarray(data, dtype=np.uint8)


def _pixel_view(msg, encoding, channels, itemsize, byteorder="="):
    """Zero-copy (height, width[, channels]) view of the pixels, skipping row padding."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * itemsize
    if width <= 0 or height <= 0:
        raise ImageDecodeError(
            "image encoding '%s' has zero size: width %d, height %d" % (encoding, width, height))
    if step < row_bytes:
        raise ImageDecodeError(
            "image encoding '%s': step %d bytes is smaller than width %d x %d bytes per pixel"
            " = %d" % (encoding, step, width, channels * itemsize, row_bytes))
    buf = _byte_buffer(msg.data)
    if buf.size < step * height:
        raise ImageDecodeError(
            "image encoding '%s' %dx%d: data is truncated, %d bytes < step %d x height %d = %d"
            % (encoding, width, height, buf.size, step, height, step * height))
    dtype = np.dtype(np.uint8) if itemsize == 1 else np.dtype(byteorder + "u%d" % itemsize)
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    return np.ndarray(shape=shape, dtype=dtype, buffer=buf, strides=strides)


def _mono16_to_mono8(view):
    # cv_bridge scales with convertTo(255/65535), i.e. round(v / 257); integer form is exact.
    return ((view.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def image_to_bgr(msg, copy=False):
    """Decode a ``sensor_msgs/Image`` into an (H, W, 3) uint8 BGR array.

    For ``bgr8`` input without ``copy`` the result is a read-only view of ``msg.data`` (no copy);
    every other encoding, or ``copy=True``, returns a new writable C-contiguous array.
    """
    encoding = msg.encoding
    bytes_per_pixel = _BYTES_PER_PIXEL.get(encoding)
    if bytes_per_pixel is None:
        raise ImageDecodeError(
            "unsupported image encoding '%s' (%dx%d); supported: %s"
            % (encoding, msg.width, msg.height, ", ".join(SUPPORTED_ENCODINGS)))
    if encoding == "mono16":
        order = ">" if msg.is_bigendian else "<"
        gray = _mono16_to_mono8(_pixel_view(msg, encoding, 1, 2, order))
        return _convert(gray, cv2.COLOR_GRAY2BGR, encoding)
    if bytes_per_pixel == 2 and int(msg.width) % 2:
        raise ImageDecodeError(
            "image encoding '%s' needs an even width, got width %d (height %d)"
            % (encoding, msg.width, msg.height))
    view = _pixel_view(msg, encoding, bytes_per_pixel, 1)
    if encoding == "bgr8":
        if copy:
            return view.copy()
        view.flags.writeable = False  # a view of the message: writing would alter the message
        return view
    return _convert(view, _CVT_CODES[encoding], encoding)


def _convert(pixels, code, encoding):
    try:
        return cv2.cvtColor(pixels, code)
    except cv2.error as exc:
        reason = (str(exc).strip().splitlines() or ["unknown error"])[-1]
        raise ImageDecodeError(
            "image encoding '%s' %dx%d: OpenCV conversion failed: %s"
            % (encoding, pixels.shape[1], pixels.shape[0], reason)) from exc


def compressed_to_bgr(msg):
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg/png, any ROS format string) to BGR."""
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ImageDecodeError(
            "compressed image format '%s' is not supported (compressedDepth carries a depth"
            " header, not a colour image)" % fmt)
    buf = _byte_buffer(msg.data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image format '%s': data is empty (0 bytes)" % fmt)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise ImageDecodeError(
            "compressed image format '%s': cannot decode %d bytes (corrupt or unknown codec)"
            % (fmt, buf.size))
    return image


def overlay_encoding_for(input_encoding):
    """Encoding to publish a colour overlay in for a given input encoding (see module doc)."""
    return input_encoding if input_encoding in _OVERLAY_ENCODINGS else "bgr8"


def bgr_to_image_fields(bgr, encoding):
    """Convert an (H, W, 3) uint8 BGR image to ``(data bytes, step)`` in ``encoding``.

    ``encoding`` is one of bgr8, rgb8, bgra8, rgba8, mono8; rows are unpadded.
    """
    if encoding not in _FROM_BGR_CODES:
        raise ValueError(
            "cannot encode a BGR image as '%s'; supported: %s"
            % (encoding, ", ".join(sorted(_FROM_BGR_CODES))))
    bgr = np.asarray(bgr)
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(
            "expected an (H, W, 3) uint8 BGR image for '%s', got shape %s dtype %s"
            % (encoding, bgr.shape, bgr.dtype))
    code = _FROM_BGR_CODES[encoding]
    out = np.ascontiguousarray(bgr if code is None else cv2.cvtColor(bgr, code))
    return out.tobytes(), out.strides[0]


def fill_image_msg(msg, bgr, encoding):
    """Fill a ``sensor_msgs/Image``-like ``msg`` with ``bgr`` converted to ``encoding``.

    Sets height, width, encoding, is_bigendian, step and data; the header is left alone.
    """
    data, step = bgr_to_image_fields(bgr, encoding)
    msg.height, msg.width = int(bgr.shape[0]), int(bgr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(step)
    # array('B') is the type rclpy stores; assigning it skips the per-element check.
    msg.data = array.array("B", data)
    return msg
