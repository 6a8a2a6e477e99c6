"""The project's converter against the real cv_bridge, for every encoding the node accepts.

The node decodes with ``espnet_ros.messages.decode`` (zero-copy, and right where cv_bridge 4.1.0 is
not). Here both decode the same messages: where cv_bridge is right the arrays must be
identical; where it is known to be wrong (see docs/node.md "cv_bridge parity"), the codec must give
what cv_bridge itself gives for the same picture in a layout it handles (no row padding,
little-endian), so every case is checked against cv_bridge.
"""
import cv2
import numpy as np
import pytest

cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge (ROS) is not installed")
pytest.importorskip("sensor_msgs.msg")

from rosutil import padded_image  # noqa: E402
from test_node import encoded_inputs  # noqa: E402

from espnet_ros.messages.decode import compressed_to_bgr, decode, image_to_bgr  # noqa: E402

BYTES_PER_PIXEL = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "mono16": 2,
                   "yuv422": 2, "yuv422_yuy2": 2, "bayer_rggb8": 1, "bayer_bggr8": 1,
                   "bayer_gbrg8": 1, "bayer_grbg8": 1}


@pytest.fixture(scope="module")
def bridge():
    return cv_bridge.CvBridge()


@pytest.fixture(scope="module")
def frame(city_frame):
    return cv2.resize(city_frame, (64, 32), interpolation=cv2.INTER_AREA)


def cv_bridge_is_right(encoding, pad, bigendian):
    """cv_bridge 4.1.0 reshapes rows by whole pixels and calls ndarray.newbyteorder (gone in
    NumPy 2): padding that is not a multiple of the pixel size, and big-endian 16 bit, fail."""
    return pad % BYTES_PER_PIXEL[encoding] == 0 and not bigendian


def test_every_encoding_and_padding_decodes_as_cv_bridge_decodes_it(bridge, frame):
    assert sorted({e for e, _, _ in encoded_inputs(frame)}) == sorted(BYTES_PER_PIXEL)
    checked = {"identical": 0, "against cv_bridge's own unpadded decode": 0}
    for pad in (0, 4, 5, 6, 7):
        for encoding, pixels, bigendian in encoded_inputs(frame):
            msg = padded_image(pixels, encoding, pad=pad, bigendian=bigendian)
            ours = image_to_bgr(msg)
            if cv_bridge_is_right(encoding, pad, bigendian):
                theirs = bridge.imgmsg_to_cv2(msg, "bgr8")
                checked["identical"] += 1
            else:
                plain = pixels.astype(pixels.dtype.newbyteorder("<")) if bigendian else pixels
                theirs = bridge.imgmsg_to_cv2(padded_image(plain, encoding, pad=0), "bgr8")
                checked["against cv_bridge's own unpadded decode"] += 1
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert np.array_equal(ours, theirs), (encoding, pad, bigendian)
            # The node's own path (decode) gives the same picture in either channel order.
            decoded = decode(msg)
            as_bgr = decoded.pixels if decoded.order == "bgr" else decoded.pixels[..., ::-1]
            assert np.array_equal(as_bgr, theirs), (encoding, pad)
    assert checked["identical"] >= 30 and checked["against cv_bridge's own unpadded decode"] >= 10


def test_the_cases_listed_as_cv_bridge_errors_are_still_cv_bridge_errors(bridge, frame):
    """Keeps the list in docs/node.md honest: if cv_bridge gets these right one day, this fails and
    the list (and cv_bridge_is_right) must be updated."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    big = padded_image(gray.astype(">u2"), "mono16", pad=0, bigendian=True)
    try:
        wrong = not np.array_equal(bridge.imgmsg_to_cv2(big, "bgr8"), image_to_bgr(big))
    except Exception:  # AttributeError: ndarray.newbyteorder, removed in NumPy 2
        wrong = True
    assert wrong
    padded = padded_image(frame, "bgr8", pad=7)
    assert not np.array_equal(bridge.imgmsg_to_cv2(padded, "bgr8"), image_to_bgr(padded))


@pytest.mark.parametrize("fmt, ext", [("jpeg", ".jpg"), ("png", ".png"),
                                      ("bgr8; jpeg compressed bgr8", ".jpg"),
                                      ("rgb8; png compressed bgr8", ".png"), ("mono png", ".png")])
def test_compressed_formats_decode_as_cv_bridge_decodes_them(bridge, frame, fmt, ext):
    from sensor_msgs.msg import CompressedImage
    image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if fmt.startswith("mono") else frame
    ok, data = cv2.imencode(ext, image)
    msg = CompressedImage(format=fmt)
    msg.data = data.tobytes()
    theirs = bridge.compressed_imgmsg_to_cv2(msg, "bgr8")
    if theirs.ndim == 2:
        # cv_bridge 4.1.0 returns a grey PNG as one channel even when bgr8 is asked for; the
        # node needs three, with the same values.
        assert fmt.startswith("mono")
        theirs = cv2.cvtColor(theirs, cv2.COLOR_GRAY2BGR)
    assert np.array_equal(compressed_to_bgr(msg), theirs)
