"""ROS-free parts of the node: the latest-frame slot and camera_info scaling."""
import threading
import types

import pytest

from espnet_ros.messages import camera_info
from espnet_ros.ros.frame_slot import Frame, LatestFrames, LatestFrameSlot


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


def test_batches_take_the_newest_frame_of_every_camera_that_has_one():
    drops = []
    slots = LatestFrames(3, on_drop=drops.append)
    slots.put(Frame("a0", 0.0, camera=0))
    slots.put(Frame("a1", 0.1, camera=0))  # replaces a0: counted for camera 0
    slots.put(Frame("c0", 0.2, camera=2))
    assert [f.msg for f in slots.take_batch(0, 0)] == ["a1", "c0"] and drops == [0]
    assert slots.take_batch(0, 0.01) == []


def test_a_flooding_camera_cannot_starve_the_others():
    """limit 1: camera 0 has a fresh frame before every take; 1 and 2 once each."""
    slots = LatestFrames(3)
    slots.put(Frame("b", 0.0, camera=1))
    slots.put(Frame("c", 0.0, camera=2))
    taken = []
    for i in range(6):
        slots.put(Frame("a%d" % i, 0.0, camera=0))
        taken += [f.msg for f in slots.take_batch(1, 0)]
    # Longest unserved first: b and c at the next two turns (a1 and a2 replaced meanwhile).
    assert taken == ["a0", "b", "c", "a3", "a4", "a5"], taken
    # Every camera flooding: strict rotation.
    order = []
    for _ in range(6):
        for camera in range(3):
            slots.put(Frame(camera, 0.0, camera=camera))
        order.append(slots.take_batch(1, 0)[0].camera)
    assert sorted(order[:3]) == [0, 1, 2] and order[3:] == order[:3], order


def test_one_forward_call_for_frames_of_several_sizes_and_channel_orders(data_dir):
    """Pipeline.infer_batch: each frame resized to the model input, one call to the backend,
    the same labels as one frame at a time."""
    import cv2
    import numpy as np

    from espnet_ros.inference import Pipeline
    pipeline = Pipeline.build("espnet-p2q3-cityscapes", input_size=(128, 64))
    image = cv2.imread(str(data_dir / "cityscapes_samples" /
                           "frankfurt_000000_000294_leftImg8bit.png"))
    frames = [cv2.resize(image, (320, 160)), cv2.resize(image[100:900, 200:1800], (200, 100)),
              cv2.resize(image, (128, 64))]
    orders = ["bgr", "rgb", "bgr"]
    frames[1] = np.ascontiguousarray(frames[1][..., ::-1])  # given as rgb
    singles = [pipeline.infer(f, o, confidence=True) for f, o in zip(frames, orders)]
    calls = []
    forward = pipeline.segmenter.forward
    pipeline.segmenter.forward = lambda batch: calls.append(batch.shape) or forward(batch)
    batch = pipeline.infer_batch(frames, orders, confidence=True)
    assert calls == [(3, 3, 64, 128)]
    for one, many in zip(singles, batch):
        assert (one.labels == many.labels).mean() > 0.999
        assert np.abs(one.probability - many.probability).max() < 1e-3
        assert many.inference_ms == batch[0].inference_ms > 0  # the one call's time
    # mono8 confidence: round(255 p), written into a uint8 buffer.
    from espnet_ros.inference.pipeline import Buffers
    out = pipeline.render(frames[0], batch[0], "bgr",
                          out=Buffers(confidence=np.empty((160, 320), np.uint8)))
    from espnet_ros.inference.resize import resize_to
    want = resize_to(np.rint(batch[0].probability * 255).astype(np.uint8), (320, 160))
    assert out.confidence.dtype == np.uint8 and (out.confidence == want).all()


def test_camera_names_and_topic_layout():
    from espnet_ros.messages.params import camera_names, validate
    from espnet_ros.ros.node_camera import Camera
    assert camera_names([]) == [] and camera_names(["front", "/rear/"]) == ["front", "rear"]
    for bad in (["front", "front"], ["1cam"], ["a b"], [""]):
        assert validate("cameras", bad), bad
    single = Camera(0, "", "/robot", "espnet_segmentation")
    assert (single.image_topic, single.output("label")) == ("image", "~/label")
    assert single.output_base == "/robot/espnet_segmentation"
    front = Camera(1, "front", "/robot", "espnet_segmentation")
    assert front.image_topic == "front/image" and front.camera_info_topic == "front/camera_info"
    assert front.output("label") == "front/espnet_segmentation/label"
    assert front.output_base == "/robot/front/espnet_segmentation"


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


def test_the_node_keeps_every_core_only_where_the_forward_saves_more_than_its_other_work():
    from espnet_ros.messages.params import NODE_FRAME_WORK_MS, keep_every_core
    assert keep_every_core(150.0, 210.0)        # the default model at 1024x512 on 2 cores
    assert not keep_every_core(9.5, 10.8)       # a 128x64 model
    assert not keep_every_core(20.0, 20.0 + NODE_FRAME_WORK_MS)  # saving exactly the other work
    assert keep_every_core(20.0, 31.0, other_work_ms=10.0)


def test_torch_threads_use_every_core_on_cpu_and_follow_an_explicit_setting():
    from espnet_ros.messages.params import torch_threads
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=2) == 2
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=1) == 1
    assert torch_threads({"threads": 0, "device": "cpu"}, cores=12) == 12
    assert torch_threads({"threads": 3, "device": "cpu"}, cores=2) == 3
    assert torch_threads({"threads": 0, "device": "cuda:0"}, cores=8) is None
