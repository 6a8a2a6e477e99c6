"""ROS-free parts of the node: the latest-frame slot and camera_info scaling."""
import threading
import types

import pytest

from espnet_ros.ros import camera_info
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


def _info(width=640, height=480, binning=(0, 0), roi=(0, 0, 0, 0)):
    return types.SimpleNamespace(
        width=width, height=height, header=None, binning_x=binning[0], binning_y=binning[1],
        roi=types.SimpleNamespace(x_offset=roi[0], y_offset=roi[1], width=roi[2],
                                  height=roi[3], do_rectify=False),
        distortion_model="plumb_bob", d=[0.1, -0.05, 0.0, 0.0, 0.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0],
        p=[500.0, 0.0, 320.0, 30.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def test_camera_info_scaling_like_image_proc_resize():
    scaled = camera_info.for_output(_info(), 320, 120)
    assert (scaled.width, scaled.height) == (320, 120)
    assert scaled.k == [250.0, 0.0, 160.0, 0.0, 127.5, 60.0, 0.0, 0.0, 1.0]
    assert scaled.p == [250.0, 0.0, 160.0, 15.0, 0.0, 127.5, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert scaled.d == [0.1, -0.05, 0.0, 0.0, 0.0] and scaled.distortion_model == "plumb_bob"
    original = _info()
    camera_info.for_output(original, 10, 10)
    assert original.k[0] == 500.0  # the input is not modified


@pytest.mark.parametrize("binning, roi, image", [
    ((0, 0), (0, 0, 0, 0), (640, 480)),
    ((2, 2), (0, 0, 0, 0), (320, 240)),
    ((1, 1), (100, 60, 400, 300), (400, 300)),
    ((2, 1), (100, 60, 400, 300), (200, 300)),
    ((4, 4), (64, 48, 512, 384), (128, 96))])
def test_binning_and_roi_follow_rep_104_as_image_geometry_reads_them(binning, roi, image):
    """A 3D point lands on the output pixel that corresponds to its input pixel."""
    pytest.importorskip("sensor_msgs.msg")
    geometry = pytest.importorskip("image_geometry", reason="image_geometry is not installed")
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[500.0, 0.0, 320.0, 0.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                      binning_x=binning[0], binning_y=binning[1],
                      roi=RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2],
                                           height=roi[3]))
    assert camera_info.problem(info) is None and camera_info.image_size(info) == image
    out_size = (256, 128)
    out = camera_info.for_output(info, *out_size)
    assert (out.binning_x, out.binning_y) == (0, 0)  # nobody applies the binning twice
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (0, 0, 0, 0)
    camera, output = geometry.PinholeCameraModel(), geometry.PinholeCameraModel()
    camera.from_camera_info(info)
    output.from_camera_info(out)
    sx, sy = out_size[0] / image[0], out_size[1] / image[1]
    for point in ((0.0, 0.0, 5.0), (0.3, -0.2, 2.0), (-1.0, 0.5, 4.0)):
        u, v = camera.project_3d_to_pixel(point)
        u2, v2 = output.project_3d_to_pixel(point)
        assert u2 == pytest.approx(u * sx) and v2 == pytest.approx(v * sy), point


def _uncalibrated(width=640, height=480, binning=(0, 0), roi=(0, 0, 0, 0)):
    """What usb_cam / v4l2_camera publish without a calibration file: K, R, P (and D) zero."""
    info = _info(width, height, binning, roi)
    info.d, info.r, info.k, info.p = [], [0.0] * 9, [0.0] * 9, [0.0] * 12
    return info


@pytest.mark.parametrize("binning, roi", [((0, 0), (0, 0, 0, 0)), ((2, 2), (0, 0, 0, 0)),
                                          ((2, 1), (100, 60, 400, 300))])
def test_an_uncalibrated_camera_info_is_republished_with_its_zeros(binning, roi):
    info = _uncalibrated(binning=binning, roi=roi)
    info.distortion_model = ""
    assert camera_info.problem(info) is None
    out = camera_info.for_output(info, 320, 120)
    assert (out.width, out.height) == (320, 120)
    assert out.k == [0.0] * 9 and out.p == [0.0] * 12 and out.r == [0.0] * 9 and out.d == []
    assert (out.binning_x, out.binning_y) == (0, 0)   # the output is the flattened image
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (0, 0, 0, 0)


def test_an_uncalibrated_info_without_a_size_takes_the_output_size():
    info = _uncalibrated(width=0, height=0)
    assert camera_info.problem(info) is None
    out = camera_info.for_output(info, 256, 128)
    assert (out.width, out.height, out.k, out.p) == (256, 128, [0.0] * 9, [0.0] * 12)


@pytest.mark.parametrize("change, needle", [
    (dict(width=0, height=0), "no image size"),
    (dict(width=0), "no image size"),
    (dict(k=[0.0] * 9, width=0, height=0), "no image size"),   # P still set
    (dict(r=[float("nan")] * 9), "R holds"),
    (dict(k=[float("nan")] + [0.0] * 8), "finite"),
    (dict(k=[0.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]), "focal lengths"),
    (dict(k=[500.0, 0.0, 320.0, 0.0, -5.0, 240.0, 0.0, 0.0, 1.0]), "focal lengths"),
    (dict(p=[1.0] * 11), "P is not"),
    (dict(d=[float("inf")]), "D holds"),
    (dict(roi=types.SimpleNamespace(x_offset=600, y_offset=0, width=100, height=10,
                                    do_rectify=False)), "ROI"),
    (dict(binning_x=1000), "binning")])
def test_bad_camera_info_is_named(change, needle):
    """Only an info that contradicts itself; its reason is named."""
    info = _info()
    for key, value in change.items():
        setattr(info, key, value)
    assert needle in camera_info.problem(info)
    assert camera_info.problem(_info()) is None


@pytest.mark.parametrize("change, needle", [
    (dict(k=[float("inf")] + [0.0] * 8), "K is not 9 finite"),
    (dict(k=[0.0, 0.0, 320.0, 0.0, 0.0, 240.0, 0.0, 0.0, 1.0]), "focal lengths fx=0"),
    (dict(width=0), "no image size"),
    (dict(roi=types.SimpleNamespace(x_offset=600, y_offset=0, width=100, height=10,
                                    do_rectify=False)), "ROI")])
def test_a_contradictory_uncalibrated_info_is_still_rejected(change, needle):
    info = _uncalibrated()
    for key, value in change.items():
        setattr(info, key, value)
    assert needle in camera_info.problem(info)


def test_torch_threads_leave_a_core_on_cpu_and_follow_an_explicit_setting():
    from espnet_ros.ros.params import torch_threads
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=2) == 1
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=1) == 1
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=12) == 11
    assert torch_threads({"threads": 3, "device": "cpu"}, cores=2) == 3
    assert torch_threads({"threads": 0, "device": "cuda:0"}, cores=8) is None
