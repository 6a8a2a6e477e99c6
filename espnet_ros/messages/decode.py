"""Image messages to pixels: ``sensor_msgs/Image`` and ``CompressedImage`` to uint8 arrays.

``image_to_bgr`` returns what ``cv_bridge.imgmsg_to_cv2(msg, 'bgr8')`` returns: the same OpenCV
colour codes (including cv_bridge's Bayer mapping, whose OpenCV names are offset from the ROS
ones) and the same 16 to 8 bit scaling (``round(v * 255 / 65535)``, which differs from ``v >> 8``
by at most 1). ``decode`` goes further for speed: rgb8 and bgr8 come back as zero-copy views in
their own channel order, which the pipeline takes as is. ``compressed_to_bgr`` reads jpeg/png,
checking the size in the header before decoding. ``image_array`` reads the project's own
outputs (labels, masks, confidences) back.

Overlays are published in the input encoding when it is ``rgb8``, ``bgr8``, ``rgba8`` or
``bgra8``. Every other input (``mono8``, ``mono16``, YUV, Bayer) gets a ``bgr8`` overlay: a
coloured segmentation overlay cannot be stored in a grey or mosaicked image without losing the
class colours, and re-encoding to YUV/Bayer would cost time for no viewer benefit.

Messages are duck-typed (rclpy's or a rosbags typestore's), so this module needs neither.
"""
import os
import struct
import sys
import tempfile
import threading
from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "ImageDecodeError",
    "SUPPORTED_ENCODINGS",
    "LAYOUTS",
    "shown",
    "check_pixels",
    "compressed_size",
    "Decoded",
    "decode",
    "image_to_bgr",
    "compressed_to_bgr",
    "overlay_encoding_for",
    "image_array",
]


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels; the text is one line.

    ``reason`` is a short category (``unsupported encoding``, ``truncated data``, ...) for
    counters and diagnostics.
    """

    def __init__(self, message, reason="undecodable image"):
        super().__init__(message)
        self.reason = reason


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

# encoding -> (channels, dtype) of the pixels as written
LAYOUTS = {
    "bgr8": (3, "u1"), "rgb8": (3, "u1"), "bgra8": (4, "u1"), "rgba8": (4, "u1"),
    "mono8": (1, "u1"), "8UC1": (1, "u1"), "mono16": (1, "u2"), "16UC1": (1, "u2"),
    "32FC1": (1, "f4"),
}


def _byte_buffer(data):
    """Expose message data as a flat uint8 array, sharing memory when the type allows it."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        return np.asarray(data, dtype=np.uint8)


def _pixel_view(msg, encoding, channels, itemsize, byteorder="=", kind="u"):
    """Zero-copy (height, width[, channels]) view of the pixels, skipping row padding."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * itemsize
    if width <= 0 or height <= 0:
        raise ImageDecodeError(
            "image encoding '%s' has zero size: width %d, height %d" % (encoding, width, height),
            "zero size")
    if step < row_bytes:
        raise ImageDecodeError(
            "image encoding '%s': step %d bytes is smaller than width %d x %d bytes per pixel"
            " = %d" % (encoding, step, width, channels * itemsize, row_bytes), "bad step")
    buf = _byte_buffer(msg.data)
    if buf.size < step * height:
        raise ImageDecodeError(
            "image encoding '%s' %dx%d: data is truncated, %d bytes < step %d x height %d = %d"
            % (encoding, width, height, buf.size, step, height, step * height), "truncated data")
    dtype = np.dtype(np.uint8) if itemsize == 1 else np.dtype("%s%s%d" % (byteorder, kind, itemsize))
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    return np.ndarray(shape=shape, dtype=dtype, buffer=buf, strides=strides)


def _mono16_to_mono8(view):
    # cv_bridge scales with convertTo(255/65535), i.e. round(v / 257); integer form is exact.
    return ((view.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def shown(text, limit=40):
    """``text`` as it may appear in one log line: printable, quoted, at most ``limit`` chars.

    Message strings come from the network: a newline in an encoding must not forge a second
    log line, nor a 100 000-character one fill the log at every frame.
    """
    text = str(text)
    clean = "".join(c if c.isprintable() else "\\x%02x" % (ord(c) & 0xFF) for c in text[:limit])
    return "'%s'%s" % (clean, "... (%d characters)" % len(text) if len(text) > limit else "")


def check_pixels(width, height, max_pixels, what):
    """ImageDecodeError "too many pixels" when width x height exceeds ``max_pixels`` (0: none)."""
    if max_pixels and int(width) * int(height) > max_pixels:
        raise ImageDecodeError(
            "%s is %dx%d = %d pixels, more than max_input_pixels = %d"
            % (what, width, height, int(width) * int(height), max_pixels), "too many pixels")


def image_to_bgr(msg, copy=False, max_pixels=0):
    """Decode a ``sensor_msgs/Image`` into an (H, W, 3) uint8 BGR array.

    For ``bgr8`` input without ``copy`` the result is a read-only view of ``msg.data`` (no copy);
    every other encoding, or ``copy=True``, returns a new writable C-contiguous array.
    ``max_pixels`` (0: no limit) is checked before anything is allocated.
    """
    encoding = msg.encoding
    bytes_per_pixel = _BYTES_PER_PIXEL.get(encoding)
    if bytes_per_pixel is None:
        raise ImageDecodeError(
            "unsupported image encoding %s (%dx%d); supported: %s"
            % (shown(encoding), msg.width, msg.height, ", ".join(SUPPORTED_ENCODINGS)),
            "unsupported encoding")
    check_pixels(msg.width, msg.height, max_pixels, "image %s" % encoding)
    if encoding == "mono16":
        order = ">" if msg.is_bigendian else "<"
        gray = _mono16_to_mono8(_pixel_view(msg, encoding, 1, 2, order))
        return _convert(gray, cv2.COLOR_GRAY2BGR, encoding)
    if bytes_per_pixel == 2 and int(msg.width) % 2:
        raise ImageDecodeError(
            "image encoding '%s' needs an even width, got width %d (height %d)"
            % (encoding, msg.width, msg.height), "odd width")
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
            % (encoding, pixels.shape[1], pixels.shape[0], reason), "conversion failed") from exc


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...), which carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STDERR_LOCK = threading.Lock()


def compressed_size(data):
    """(kind, width, height) from a PNG or JPEG header, read before anything is decoded.

    Raises ImageDecodeError for other data, a header cut short, or a file without its end
    marker (PNG IEND, JPEG EOI): decoders print to stderr and half-decode such files.
    """
    head = bytes(data[:64 * 1024])  # the JPEG size may follow EXIF / ICC segments
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ImageDecodeError("png data is truncated: no IHDR header", "truncated data")
        width, height = struct.unpack(">II", head[16:24])
        if b"IEND" not in bytes(data[-1024:]):
            raise ImageDecodeError("png data %dx%d is truncated: no IEND chunk at its end"
                                   % (width, height), "truncated data")
        return "png", width, height
    if head.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                break
            marker = head[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
            if marker in _JPEG_SOF and pos + 9 <= len(head):
                height, width = struct.unpack(">HH", head[pos + 5:pos + 9])
                if b"\xff\xd9" not in bytes(data[-1024:]):  # some cameras pad after it
                    raise ImageDecodeError("jpeg data %dx%d is truncated: no end-of-image marker"
                                           % (width, height), "truncated data")
                return "jpeg", width, height
            pos += 2 + length
        raise ImageDecodeError("jpeg data has no frame header in its first %d bytes (truncated "
                               "or corrupt)" % len(head), "truncated data")
    raise ImageDecodeError("compressed data is neither png nor jpeg (starts with %s)"
                           % shown(head[:8].decode("latin-1")), "unsupported format")


def _decode_capturing_stderr(buf):
    """cv2.imdecode, with what libpng / libjpeg print on fd 2 taken for the error line.

    Whatever else was written to fd 2 meanwhile (another thread's log line) goes back out.
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable stderr: decode as is
            return _imdecode(buf), ""
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                image = _imdecode(buf)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            printed = capture.read().decode("utf-8", "replace")
    if image is not None and printed:
        sys.stderr.write(printed)  # decoded fine: nothing to hide
    return image, printed


def _imdecode(buf):
    try:
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def compressed_to_bgr(msg, max_pixels=0):
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg/png, any ROS format string) to BGR.

    The size in the header is checked against ``max_pixels`` (0: no limit) before decoding, so
    a small file that decodes to a huge image (a decompression bomb) allocates nothing.
    """
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ImageDecodeError(
            "compressed image format %s is not supported (compressedDepth carries a depth"
            " header, not a colour image)" % shown(fmt), "unsupported format")
    buf = _byte_buffer(msg.data)
    if buf.size == 0:
        raise ImageDecodeError("compressed image format %s: data is empty (0 bytes)" % shown(fmt),
                               "empty data")
    try:
        kind, width, height = compressed_size(buf)
    except ImageDecodeError as exc:
        raise ImageDecodeError("compressed image format %s: %s" % (shown(fmt), exc),
                               exc.reason) from None
    check_pixels(width, height, max_pixels, "%s image" % kind)
    image, printed = _decode_capturing_stderr(buf)
    if image is None:
        said = " ".join(printed.split())
        raise ImageDecodeError(
            "compressed %s image %dx%d: cannot decode %d bytes (corrupt)%s"
            % (kind, width, height, buf.size, ": %s" % shown(said, 160) if said else ""),
            "corrupt compressed data")
    return image


def overlay_encoding_for(input_encoding):
    """Encoding to publish a colour overlay in for a given input encoding (see module doc)."""
    return input_encoding if input_encoding in _OVERLAY_ENCODINGS else "bgr8"


class Decoded(NamedTuple):
    pixels: np.ndarray   # HxWx3 uint8
    order: str           # "bgr" or "rgb": the channel order of ``pixels``
    encoding: str        # the message's encoding ("jpeg"/"png"... for compressed input)


def decode(msg, max_pixels=0):
    """An Image or CompressedImage -> ``Decoded``; rgb8/bgr8 pixels are read-only views.

    ``max_pixels`` (0: no limit) is checked before any decoding allocates.
    """
    if hasattr(msg, "format"):
        return Decoded(compressed_to_bgr(msg, max_pixels), "bgr", str(msg.format))
    if msg.encoding == "rgb8":
        check_pixels(msg.width, msg.height, max_pixels, "image rgb8")
        view = _pixel_view(msg, "rgb8", 3, 1)
        view.flags.writeable = False
        return Decoded(view, "rgb", "rgb8")
    return Decoded(image_to_bgr(msg, max_pixels=max_pixels), "bgr", msg.encoding)


def image_array(msg):
    """The pixels of an Image in its own encoding (row padding dropped): mono8/16, 8UC3, ...

    For reading outputs (labels, masks, overlays, confidences) back; a view where possible.
    """
    channels, dtype = LAYOUTS.get(msg.encoding, (None, None))
    if channels is None:
        raise ImageDecodeError("cannot read image encoding %s as an array" % shown(msg.encoding),
                               "unsupported encoding")
    order = ">" if msg.is_bigendian else "<"
    return _pixel_view(msg, msg.encoding, channels, np.dtype(dtype).itemsize, order,
                       np.dtype(dtype).kind)
