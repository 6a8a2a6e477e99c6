"""Tests for espnet_ros.messages (decode, encode) on hand-built byte layouts."""
import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from espnet_ros.messages.decode import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    compressed_to_bgr,
    decode,
    image_array,
    image_to_bgr,
    overlay_encoding_for,
)
from espnet_ros.messages.encode import (
    ImageWriter,
    MessageKit,
    camera_info_message,
    compressed_message,
    header,
    image_message,
    write_pixels,
)

PAD = 0xEE  # padding byte value that must never show up in decoded pixels


def make_msg(encoding, width, height, rows, pad=0, is_bigendian=0, container=bytes):
    """Build a duck-typed Image from a list of per-row byte lists, adding ``pad`` bytes a row."""
    data = []
    for row in rows:
        data.extend(row)
        data.extend([PAD] * pad)
    step = len(rows[0]) + pad if rows else 0
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
        step=step, data=container(bytearray(data)) if container is not list else data)


# 2x2 test picture in BGR: red, green / blue, grey-ish.
BGR = np.array([[[0, 0, 255], [0, 255, 0]], [[255, 0, 0], [10, 20, 30]]], dtype=np.uint8)


def rows_of(image):
    return [list(image[y].reshape(-1)) for y in range(image.shape[0])]


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding, to_layout", [
    ("bgr8", lambda bgr: bgr),
    ("rgb8", lambda bgr: bgr[..., ::-1]),
    ("bgra8", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)])),
    ("rgba8", lambda bgr: np.dstack([bgr[..., ::-1], np.full(bgr.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_known_bytes(encoding, to_layout, pad):
    msg = make_msg(encoding, 2, 2, rows_of(to_layout(BGR)), pad=pad)
    out = image_to_bgr(msg)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, BGR)


def test_rgb8_explicit_bytes():
    # one row, two pixels: (R,G,B) = (1,2,3), (4,5,6); row padded to 8 bytes
    msg = SimpleNamespace(height=1, width=2, encoding="rgb8", is_bigendian=0, step=8,
                          data=bytes([1, 2, 3, 4, 5, 6, PAD, PAD]))
    np.testing.assert_array_equal(image_to_bgr(msg), [[[3, 2, 1], [6, 5, 4]]])


@pytest.mark.parametrize("pad", [0, 2])
def test_mono8(pad):
    msg = make_msg("mono8", 3, 2, [[0, 100, 255], [1, 2, 3]], pad=pad)
    out = image_to_bgr(msg)
    expected = np.array([[0, 100, 255], [1, 2, 3]], np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expected)


def mono16_rows(values, big_endian):
    order = ">u2" if big_endian else "<u2"
    return [list(np.asarray(row, dtype=order).tobytes()) for row in values]


@pytest.mark.parametrize("big_endian", [0, 1])
@pytest.mark.parametrize("pad", [0, 1, 4])
def test_mono16_scaling_and_byte_order(big_endian, pad):
    values = [[0, 65535, 25700], [65280, 384, 32896]]
    # cv_bridge scales by 255/65535 with rounding: 65280 -> 254 (a plain >> 8 would give 255)
    expected = np.array([[0, 255, 100], [254, 1, 128]], np.uint8)
    msg = make_msg("mono16", 3, 2, mono16_rows(values, big_endian), pad=pad,
                   is_bigendian=big_endian)
    out = image_to_bgr(msg)
    assert out.shape == (2, 3, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expected)


def test_mono16_matches_cv_bridge_convert_to_for_every_value():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    msg = SimpleNamespace(height=256, width=256, encoding="mono16", is_bigendian=0, step=512,
                          data=values.astype("<u2").tobytes())
    # cv_bridge: GRAY2BGR then convertTo(CV_8U, 255/65535), i.e. a rounded saturating scale
    reference = cv2.convertScaleAbs(values, alpha=255.0 / 65535.0)
    np.testing.assert_array_equal(image_to_bgr(msg)[..., 1], reference)


def yuv_rows(pairs, order):
    """pairs: list of rows of (Y0, Y1, U, V) macro-pixels; order 'uyvy' or 'yuyv'."""
    rows = []
    for row in pairs:
        out = []
        for y0, y1, u, v in row:
            out.extend([u, y0, v, y1] if order == "uyvy" else [y0, u, y1, v])
        rows.append(out)
    return rows


def bt601_limited(y, u, v):
    """BT.601 limited-range YUV -> BGR, the conversion OpenCV uses for 4:2:2 data."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    r, g, b = c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d
    return np.clip(np.round([b, g, r]), 0, 255)


YUV_ENCODINGS = [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")]


@pytest.mark.parametrize("pad", [0, 4])
@pytest.mark.parametrize("encoding, order", YUV_ENCODINGS)
def test_yuv422_white_black_grey_and_byte_order(encoding, order, pad):
    pairs = [[(235, 235, 128, 128), (16, 16, 128, 128)],
             [(128, 128, 128, 128), (16, 235, 128, 128)]]
    msg = make_msg(encoding, 4, 2, yuv_rows(pairs, order), pad=pad)
    out = image_to_bgr(msg)
    assert out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out[0, :2], 255)  # white
    np.testing.assert_array_equal(out[0, 2:], 0)  # black
    np.testing.assert_array_equal(out[1, :2], 130)  # mid grey: 1.164 * (128 - 16)
    # distinct luma inside one macro-pixel proves the Y0/Y1 byte positions
    np.testing.assert_array_equal(out[1, 2], 0)
    np.testing.assert_array_equal(out[1, 3], 255)


@pytest.mark.parametrize("encoding, order", YUV_ENCODINGS)
@pytest.mark.parametrize("yuv, bgr", [
    ((81, 90, 240), (0, 0, 255)),  # red
    ((145, 54, 34), (0, 255, 0)),  # green
    ((41, 240, 110), (255, 0, 0)),  # blue
    ((120, 100, 170), None),  # an arbitrary patch, checked against the formula
])
def test_yuv422_coloured_patches(encoding, order, yuv, bgr):
    y, u, v = yuv
    msg = make_msg(encoding, 2, 1, yuv_rows([[(y, y, u, v)]], order))
    out = image_to_bgr(msg).astype(int)
    expected = bt601_limited(y, u, v) if bgr is None else np.array(bgr)
    assert np.abs(out[0, 0] - expected).max() <= 3
    np.testing.assert_array_equal(out[0, 0], out[0, 1])


BAYER_CHANNEL = {"b": 0, "g": 1, "r": 2}


def bayer_mosaic(bgr, pattern):
    """Sample a BGR scene the way a sensor with the ROS pattern (e.g. 'rggb') would."""
    out = np.zeros(bgr.shape[:2], np.uint8)
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = bgr[dy::2, dx::2, BAYER_CHANNEL[pattern[2 * dy + dx]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("colour", [(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 120, 200)])
@pytest.mark.parametrize("pad", [0, 3])
def test_bayer_uniform_scene_demosaics_to_its_colour(pattern, colour, pad):
    scene = np.empty((8, 10, 3), np.uint8)
    scene[:] = colour
    msg = make_msg("bayer_%s8" % pattern, 10, 8, rows_of(bayer_mosaic(scene, pattern)), pad=pad)
    np.testing.assert_array_equal(image_to_bgr(msg), scene)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_two_colour_scene(pattern):
    scene = np.zeros((12, 16, 3), np.uint8)
    scene[:, :8] = (0, 0, 255)  # red left half
    scene[:, 8:] = (255, 0, 0)  # blue right half
    msg = make_msg("bayer_%s8" % pattern, 16, 12, rows_of(bayer_mosaic(scene, pattern)))
    out = image_to_bgr(msg)
    # away from the boundary, interpolation sees only one colour
    np.testing.assert_array_equal(out[:, :6], scene[:, :6])
    np.testing.assert_array_equal(out[:, 10:], scene[:, 10:])


@pytest.mark.parametrize("container", [bytes, bytearray, list, lambda b: array.array("B", b),
                                       lambda b: np.frombuffer(b, np.uint8)])
def test_data_containers(container):
    msg = make_msg("rgb8", 2, 2, rows_of(BGR[..., ::-1]), pad=1, container=container)
    np.testing.assert_array_equal(image_to_bgr(msg), BGR)


def test_bgr8_is_a_read_only_view_unless_copied():
    backing = bytearray(BGR.tobytes())
    msg = SimpleNamespace(height=2, width=2, encoding="bgr8", is_bigendian=0, step=6,
                          data=backing)
    view = image_to_bgr(msg)
    assert np.shares_memory(view, np.frombuffer(backing, np.uint8))
    assert not view.flags.writeable
    copied = image_to_bgr(msg, copy=True)
    assert copied.flags.writeable and copied.flags.c_contiguous
    assert not np.shares_memory(copied, np.frombuffer(backing, np.uint8))
    copied[:] = 0
    np.testing.assert_array_equal(view, BGR)


def test_padded_bgr8_view_skips_padding():
    msg = make_msg("bgr8", 2, 2, rows_of(BGR), pad=5)
    out = image_to_bgr(msg)
    np.testing.assert_array_equal(out, BGR)
    assert out.strides[0] == 11


def test_longer_data_than_needed_is_accepted():
    msg = make_msg("mono8", 2, 1, [[5, 6]])
    msg.data = msg.data + b"\x00\x00"
    np.testing.assert_array_equal(image_to_bgr(msg)[0, :, 0], [5, 6])


# ---------------------------------------------------------------- errors


def error_text(msg):
    with pytest.raises(ImageDecodeError) as info:
        image_to_bgr(msg)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("encoding", ["16UC1", "rgb16", "bayer_rggb16", "nv12", "", "BGR8"])
def test_unsupported_encoding(encoding):
    text = error_text(make_msg(encoding, 2, 1, [[0] * 6]))
    assert "unsupported image encoding '%s'" % encoding in text
    assert "2x1" in text and "bgr8" in text


def test_error_is_a_value_error():
    assert issubclass(ImageDecodeError, ValueError)


@pytest.mark.parametrize("encoding, width, step, row_bytes", [
    ("rgb8", 3, 8, 9), ("mono16", 4, 7, 8), ("yuv422", 4, 6, 8), ("bgra8", 2, 0, 8)])
def test_step_smaller_than_row(encoding, width, step, row_bytes):
    msg = SimpleNamespace(height=2, width=width, encoding=encoding, is_bigendian=0, step=step,
                          data=bytes(64))
    text = error_text(msg)
    assert encoding in text and "step %d" % step in text and "= %d" % row_bytes in text


@pytest.mark.parametrize("encoding, width, bpp", [("bgr8", 3, 3), ("mono16", 2, 2),
                                                  ("bayer_grbg8", 4, 1)])
def test_truncated_data(encoding, width, bpp):
    step = width * bpp + 2
    msg = SimpleNamespace(height=3, width=width, encoding=encoding, is_bigendian=0, step=step,
                          data=bytes(step * 3 - 1))
    text = error_text(msg)
    assert encoding in text and "truncated" in text
    assert "%d bytes < step %d x height 3 = %d" % (step * 3 - 1, step, step * 3) in text


@pytest.mark.parametrize("width, height", [(0, 2), (2, 0), (0, 0)])
def test_zero_size(width, height):
    msg = SimpleNamespace(height=height, width=width, encoding="rgb8", is_bigendian=0, step=6,
                          data=b"")
    text = error_text(msg)
    assert "'rgb8'" in text and "zero size" in text
    assert "width %d, height %d" % (width, height) in text


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2", "uyvy", "yuyv"])
def test_yuv_odd_width(encoding):
    msg = SimpleNamespace(height=2, width=3, encoding=encoding, is_bigendian=0, step=6,
                          data=bytes(12))
    text = error_text(msg)
    assert encoding in text and "even width" in text and "width 3" in text


# ---------------------------------------------------------------- compressed


def scene(height=16, width=24):
    yy, xx = np.mgrid[0:height, 0:width]
    return np.dstack([xx * 10, yy * 15, (xx + yy) * 5]).astype(np.uint8)


def compressed(fmt, ext, image):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return SimpleNamespace(format=fmt, data=buf.tobytes())


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8"])
def test_compressed_png_round_trip_is_exact(fmt):
    image = scene()
    np.testing.assert_array_equal(compressed_to_bgr(compressed(fmt, ".png", image)), image)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "rgb8; jpeg compressed bgr8",
                                 "bgr8; jpeg compressed bgr8"])
def test_compressed_jpeg_round_trip_within_tolerance(fmt):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:8] = (0, 0, 255)
    image[8:] = (255, 128, 0)
    out = compressed_to_bgr(compressed(fmt, ".jpg", image))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out[1:6].astype(int) - image[1:6]).max() <= 12
    assert np.abs(out[10:15].astype(int) - image[10:15]).max() <= 12


def test_compressed_mono_png_becomes_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = compressed_to_bgr(compressed("mono8; png compressed mono8", ".png", gray))
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out[..., 2], gray)


def test_compressed_accepts_array_data():
    msg = compressed("png", ".png", scene())
    msg.data = array.array("B", msg.data)
    np.testing.assert_array_equal(compressed_to_bgr(msg), scene())


@pytest.mark.parametrize("data, needle", [(b"", "empty (0 bytes)"),
                                          (b"not an image at all", "neither png nor jpeg")])
def test_compressed_errors(data, needle):
    with pytest.raises(ImageDecodeError) as info:
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=data))
    assert needle in str(info.value) and "'jpeg'" in str(info.value)


def test_compressed_truncated_jpeg():
    msg = compressed("jpeg", ".jpg", scene())
    msg.data = msg.data[:20]
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        compressed_to_bgr(msg)


def test_compressed_depth_is_rejected():
    msg = compressed("16UC1; compressedDepth png", ".png", scene())
    with pytest.raises(ImageDecodeError, match="compressedDepth"):
        compressed_to_bgr(msg)


# ---------------------------------------------------------------- overlay output


@pytest.mark.parametrize("encoding, expected", [
    ("rgb8", "rgb8"), ("bgr8", "bgr8"), ("rgba8", "rgba8"), ("bgra8", "bgra8"),
    ("mono8", "bgr8"), ("mono16", "bgr8"), ("yuv422", "bgr8"), ("yuv422_yuy2", "bgr8"),
    ("bayer_rggb8", "bgr8"), ("something_else", "bgr8")])
def test_overlay_encoding_for(encoding, expected):
    assert overlay_encoding_for(encoding) == expected


def _ns(**fields):
    return SimpleNamespace(**fields)


# A kit of plain namespaces: the codec needs no message library (rclpy and rosbags kits are
# exercised in test_bag.py, test_node.py and below).
KIT = MessageKit(_ns, _ns, _ns, _ns, _ns, _ns, lambda pixels: pixels.tobytes())


@pytest.mark.parametrize("encoding, order, channels, first_pixel", [
    ("bgr8", "bgr", 3, [0, 0, 255]), ("rgb8", "bgr", 3, [255, 0, 0]),
    ("bgra8", "bgr", 4, [0, 0, 255, 255]), ("rgba8", "bgr", 4, [255, 0, 0, 255]),
    ("mono8", "bgr", 1, [76]), ("rgb8", "rgb", 3, [0, 0, 255]), ("bgr8", "rgb", 3, [255, 0, 0])])
def test_image_message_layouts(encoding, order, channels, first_pixel):
    msg = image_message(KIT, header(KIT, 5 * 10 ** 9 + 7, "cam"), BGR, encoding, order)
    assert (msg.height, msg.width, msg.encoding, msg.step) == (2, 2, encoding, 2 * channels)
    assert msg.header.stamp.sec == 5 and msg.header.stamp.nanosec == 7
    assert msg.header.frame_id == "cam"
    assert len(msg.data) == 2 * msg.step and list(msg.data[:channels]) == first_pixel


def test_image_message_accepts_non_contiguous_input():
    wide = np.zeros((2, 4, 3), np.uint8)
    wide[:, ::2] = BGR
    msg = image_message(KIT, None, wide[:, ::2], "bgr8")
    assert msg.step == 6 and msg.data == BGR.tobytes()


def test_image_message_labels_and_float_confidence_read_back():
    labels = np.array([[0, 19], [255, 3]], np.uint8)
    assert image_array(image_message(KIT, None, labels, "mono8")).tolist() == labels.tolist()
    conf = np.array([[0.5, 1.0], [0.25, 0.125]], np.float32)
    msg = image_message(KIT, None, conf, "32FC1")
    assert msg.step == 8 and np.array_equal(image_array(msg), conf)


@pytest.mark.parametrize("encoding", ["mono16", "yuv422", "bayer_rggb8", "rgb16"])
def test_image_message_rejects_encodings_it_cannot_write(encoding):
    with pytest.raises(ValueError, match=encoding):
        image_message(KIT, None, BGR, encoding)


def test_image_message_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        image_message(KIT, None, np.zeros((2, 2), np.uint8), "bgr8")


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8"])
def test_image_message_round_trip(encoding):
    msg = image_message(KIT, None, BGR, encoding)
    np.testing.assert_array_equal(image_to_bgr(msg), BGR)


def test_decode_gives_rgb8_and_bgr8_as_views_in_their_own_order():
    rgb = image_message(KIT, None, BGR, "rgb8")
    out = decode(rgb)
    assert out.order == "rgb" and out.encoding == "rgb8" and not out.pixels.flags.writeable
    np.testing.assert_array_equal(out.pixels, BGR[..., ::-1])
    assert np.shares_memory(out.pixels, np.frombuffer(rgb.data, np.uint8))
    bgr = decode(image_message(KIT, None, BGR, "bgr8"))
    assert bgr.order == "bgr" and np.array_equal(bgr.pixels, BGR)
    mono = decode(image_message(KIT, None, BGR, "mono8"))
    assert mono.order == "bgr" and mono.pixels.shape == (2, 2, 3)
    png = decode(compressed_message(KIT, None, BGR, "png"))
    assert png.order == "bgr" and png.encoding == "png" and np.array_equal(png.pixels, BGR)


def test_image_writer_paints_into_the_message_buffer():
    pytest.importorskip("sensor_msgs.msg")
    from sensor_msgs.msg import Image
    writer = ImageWriter(Image, "rgb8")
    pixels = writer.pixels(2, 2)
    pixels[...] = BGR[..., ::-1]
    msg = writer.message(Image().header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 2, 6, "rgb8")
    np.testing.assert_array_equal(image_to_bgr(msg), BGR)  # no copy was needed to get there
    assert writer.pixels(2, 2) is pixels  # same size: same buffer
    assert writer.pixels(4, 2).shape == (4, 2, 3) and len(msg.data) == 24
    rgba = ImageWriter(Image, "rgba8")
    write_pixels(rgba.pixels(2, 2), BGR, "rgba8", "bgr")
    np.testing.assert_array_equal(image_to_bgr(rgba.message(Image().header)), BGR)
    with pytest.raises(ValueError):
        write_pixels(rgba.pixels(3, 3), BGR, "rgba8", "bgr")


def test_compressed_and_camera_info_messages():
    jpeg = compressed_message(KIT, None, BGR, "jpeg")
    assert jpeg.format == "jpeg" and jpeg.data[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="bmp"):
        compressed_message(KIT, None, BGR, "bmp")
    info = camera_info_message(KIT, None, 640, 480)
    assert (info.width, info.height) == (640, 480)
    assert list(info.k) == [640.0, 0, 320.0, 0, 640.0, 240.0, 0, 0, 1]
    assert list(info.p) == [640.0, 0, 320.0, 0, 0, 640.0, 240.0, 0, 0, 0, 1, 0]


BYTES_PER_PIXEL = {"mono8": 1, "mono16": 2, "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4,
                   "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2, "bayer_rggb8": 1,
                   "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1}


def test_every_supported_encoding_decodes():
    assert sorted(SUPPORTED_ENCODINGS) == sorted(BYTES_PER_PIXEL)
    for encoding, bpp in BYTES_PER_PIXEL.items():
        msg = SimpleNamespace(height=2, width=4, encoding=encoding, is_bigendian=0,
                              step=4 * bpp, data=bytes(8 * bpp))
        assert image_to_bgr(msg).shape == (2, 4, 3), encoding


# ---------------------------------------------------------------- real ROS messages


def test_real_sensor_msgs_image():
    msg_module = pytest.importorskip("sensor_msgs.msg")
    rgb = BGR[..., ::-1]
    padded = np.full((2, 8), PAD, np.uint8)
    padded[:, :6] = rgb.reshape(2, 6)
    msg = msg_module.Image(height=2, width=2, encoding="rgb8", is_bigendian=0, step=8,
                           data=array.array("B", padded.tobytes()))
    np.testing.assert_array_equal(image_to_bgr(msg), BGR)


def test_real_sensor_msgs_mono16_big_endian():
    msg_module = pytest.importorskip("sensor_msgs.msg")
    data = np.array([[65535, 0]], ">u2").tobytes()
    msg = msg_module.Image(height=1, width=2, encoding="mono16", is_bigendian=1, step=4,
                           data=array.array("B", data))
    np.testing.assert_array_equal(image_to_bgr(msg)[0, :, 0], [255, 0])


def test_real_sensor_msgs_overlay_and_compressed():
    msg_module = pytest.importorskip("sensor_msgs.msg")
    from espnet_ros.messages.encode import rclpy_kit
    kit = rclpy_kit()
    out = image_message(kit, msg_module.Image().header, BGR, overlay_encoding_for("rgba8"))
    assert isinstance(out, msg_module.Image) and isinstance(out.data, array.array)
    assert out.encoding == "rgba8" and out.step == 8 and len(out.data) == 16
    np.testing.assert_array_equal(image_to_bgr(out), BGR)
    ok, buf = cv2.imencode(".png", BGR)
    comp = msg_module.CompressedImage(format="bgr8; png compressed bgr8",
                                      data=array.array("B", buf.tobytes()))
    np.testing.assert_array_equal(compressed_to_bgr(comp), BGR)
    info = camera_info_message(kit, msg_module.Image().header, 640, 480)
    from rclpy.serialization import deserialize_message, serialize_message
    back = deserialize_message(serialize_message(info), msg_module.CameraInfo)
    assert (back.width, back.height) == (640, 480) and list(back.k)[:3] == [640.0, 0.0, 320.0]


# ---------------------------------------------------------------- hostile input


def _png_header_only(width, height):
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_from_its_header_before_any_decoding(monkeypatch):
    import espnet_ros.messages.decode as codec_module
    monkeypatch.setattr(codec_module, "_decode_capturing_stderr",
                        lambda buf: pytest.fail("decoded despite the pixel limit"))
    bomb = SimpleNamespace(format="png", data=_png_header_only(30000, 30000))
    with pytest.raises(ImageDecodeError, match="30000x30000 = 900000000 pixels") as info:
        compressed_to_bgr(bomb, max_pixels=50_000_000)
    assert info.value.reason == "too many pixels"
    ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="96x64") as info:
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=jpeg.tobytes()), max_pixels=1000)
    assert info.value.reason == "too many pixels"
    monkeypatch.undo()
    assert compressed_to_bgr(SimpleNamespace(format="jpeg", data=jpeg.tobytes()),
                             max_pixels=96 * 64).shape == (64, 96, 3)  # at the limit: fine


def test_raw_images_are_refused_over_the_pixel_limit_before_reading_the_data():
    huge = SimpleNamespace(height=10000, width=10000, encoding="bgr8", is_bigendian=0,
                           step=30000, data=b"")  # no data needed to refuse it
    for decoded in (lambda: image_to_bgr(huge, max_pixels=50_000_000),
                    lambda: decode(huge, max_pixels=50_000_000)):
        with pytest.raises(ImageDecodeError, match="100000000 pixels") as info:
            decoded()
        assert info.value.reason == "too many pixels"
    huge.encoding = "rgb8"
    with pytest.raises(ImageDecodeError, match="too|pixels"):
        decode(huge, max_pixels=50_000_000)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_compressed_data_is_named_without_calling_the_decoder(ext):
    ok, data = cv2.imencode(ext, scene())
    cut = SimpleNamespace(format=ext[1:], data=data.tobytes()[: len(data) * 2 // 3])
    with pytest.raises(ImageDecodeError, match="truncated") as info:
        compressed_to_bgr(cut)
    assert info.value.reason == "truncated data"


def test_what_libpng_prints_goes_into_the_error_not_onto_stderr(capfd):
    ok, data = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                                                      dtype=np.uint8))
    corrupt = bytearray(data.tobytes())
    corrupt[60:70] = b"x" * 10  # inside IDAT: its CRC no longer matches
    with pytest.raises(ImageDecodeError, match="libpng error") as info:
        compressed_to_bgr(SimpleNamespace(format="png", data=bytes(corrupt)))
    assert info.value.reason == "corrupt compressed data"
    assert "\n" not in str(info.value)
    assert "libpng" not in capfd.readouterr().err


def test_strings_from_the_network_cannot_forge_or_flood_log_lines():
    forged = SimpleNamespace(height=2, width=2, encoding="rgb8\n[ERROR] forged line",
                             is_bigendian=0, step=6, data=bytes(12))
    with pytest.raises(ImageDecodeError) as info:
        image_to_bgr(forged)
    assert "\n" not in str(info.value) and "\\x0a" in str(info.value)
    flood = SimpleNamespace(height=2, width=2, encoding="x" * 100000, is_bigendian=0, step=6,
                            data=bytes(12))
    with pytest.raises(ImageDecodeError) as info:
        image_to_bgr(flood)
    assert len(str(info.value)) < 400 and "100000 characters" in str(info.value)
    fmt = SimpleNamespace(format="jpeg\r\n" + "y" * 5000, data=b"")
    with pytest.raises(ImageDecodeError) as info:
        compressed_to_bgr(fmt)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame"])
def test_image_size_is_read_from_the_serialized_message(frame_id):
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message

    from espnet_ros.messages.cdr import cdr_image_size
    from espnet_ros.messages.encode import rclpy_kit
    kit = rclpy_kit()
    msg = image_message(kit, kit.Header(frame_id=frame_id), np.zeros((5, 7, 3), np.uint8), "bgr8")
    assert cdr_image_size(serialize_message(msg)) == (7, 5)
    assert cdr_image_size(b"\x00\x01\x00\x00abc") is None
