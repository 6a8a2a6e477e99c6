"""ROS-free parts of the node: the latest-frame slot and camera_info scaling."""
import sys
import threading
import types

import pytest

from espnet_ros.ros.camera_info import scale_camera_info
from espnet_ros.ros.frame_slot import Frame, LatestFrameSlot


def test_slot_keeps_only_the_newest_frame_and_counts_replacements():
    drops = []
    slot = LatestFrameSlot(on_drop=lambda: drops.append(1))
    assert slot.put(Frame("a", 0.0)) is False
    assert slot.put(Frame("b", 1.0)) is True
    assert slot.put(Frame("c", 2.0)) is True
    assert slot.take(0).msg == "c" and len(drops) == 2
    assert slot.take(0.01) is None


def test_slot_wakes_a_waiting_worker_and_closes():
    slot = LatestFrameSlot()
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(5)))
    worker.start()
    slot.put(Frame("x", 0.0))
    worker.join(2)
    assert got[0].msg == "x"
    closer = threading.Thread(target=lambda: got.append(slot.take(5)))
    closer.start()
    slot.close()
    closer.join(2)
    assert got[1] is None and slot.closed


def _info(width=640, height=480):
    roi = types.SimpleNamespace(x_offset=10, y_offset=20, width=100, height=50)
    return types.SimpleNamespace(
        width=width, height=height, roi=roi, header=None,
        k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0],
        p=[500.0, 0.0, 320.0, 30.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def test_camera_info_scaling_like_image_proc_resize():
    scaled = scale_camera_info(_info(), 320, 120)
    assert (scaled.width, scaled.height) == (320, 120)
    assert scaled.k == [250.0, 0.0, 160.0, 0.0, 127.5, 60.0, 0.0, 0.0, 1.0]
    assert scaled.p == [250.0, 0.0, 160.0, 15.0, 0.0, 127.5, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert (scaled.roi.x_offset, scaled.roi.y_offset, scaled.roi.width, scaled.roi.height) == \
        (5, 5, 50, 12)
    original = _info()
    scale_camera_info(original, 10, 10)
    assert original.k[0] == 500.0  # the input is not modified


def test_camera_info_without_size_is_an_error():
    with pytest.raises(ValueError, match="no image size"):
        scale_camera_info(_info(0, 0), 10, 10)


def test_the_project_converter_is_used_even_where_cv_bridge_imports(monkeypatch):
    pytest.importorskip("rclpy")
    from espnet_ros.ros import segment_node
    from espnet_ros.ros.image_codec import image_to_bgr

    class FakeBridge:
        def imgmsg_to_cv2(self, msg, encoding):
            raise AssertionError("cv_bridge must not be used")

    for module in (None, types.SimpleNamespace(CvBridge=FakeBridge)):
        monkeypatch.setitem(sys.modules, "cv_bridge", module)
        assert segment_node.raw_image_decoder() == (image_to_bgr, "image_codec")
