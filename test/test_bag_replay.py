"""Replay of real CamVid frames through segment_node in its own process, over real DDS."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from test_bag import write_recorder_style_bag  # noqa: E402

from espnet_ros.bag.evaluate import evaluate_bag, node_config  # noqa: E402
from espnet_ros.bag.io import BagReader  # noqa: E402
from espnet_ros.bag.make import dataset_source, make_bag  # noqa: E402
from espnet_ros.tools.bag_replay import ReplayOptions, run_replay  # noqa: E402

MODEL = "espnet-p2q8-camvid"
SIZE = (240, 180)  # a quarter of the CamVid frame keeps the node fast on two cores
FRAMES = 20


@pytest.fixture(scope="module")
def camvid_bag(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "camvid20"
    make_bag(path, dataset_source("camvid", data_dir / "camvid", "test", limit=FRAMES), rate=10.0,
             start_time=1000.0)
    return path


@pytest.fixture(scope="module")
def offline(camvid_bag):
    return evaluate_bag(camvid_bag, node_config(MODEL, size=SIZE))


def _options(out_dir, **kwargs):
    return ReplayOptions(model=MODEL, size=SIZE, out_dir=out_dir, startup_timeout=240.0, **kwargs)


def test_closed_loop_replay_scores_exactly_the_offline_miou(camvid_bag, offline, interfaces_env, tmp_path):
    report = run_replay(camvid_bag, _options(tmp_path, closed_loop=True), log=lambda *_: None)
    frames = report["frames"]
    assert frames == {"sent": FRAMES, "outputs": FRAMES, "dropped": 0, "dropped_stamps_ns": []}
    assert report["accuracy"]["frames"] == offline["accuracy"]["frames"] == FRAMES
    assert report["accuracy"]["miou"] == offline["accuracy"]["miou"]
    assert report["accuracy"]["per_class_iou"] == offline["accuracy"]["per_class_iou"]
    assert report["node_counters"] == {"received": FRAMES, "processed": FRAMES, "dropped": 0, "rejected": 0}
    assert report["counters_consistent"] is True and report["node_exit_code"] == 0
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report["throughput_fps"] > 0
    # the report files, and the outputs as a bag anyone can open
    saved = json.loads(Path(report["files"]["json"]).read_text())
    assert saved["accuracy"]["miou"] == offline["accuracy"]["miou"]
    assert "mIoU" in Path(report["files"]["markdown"]).read_text()
    assert Path(report["files"]["plot"]).read_bytes()[:4] == b"\x89PNG"
    base = "/espnet_replay/espnet_segmentation/"
    with BagReader(report["output_bag"]) as bag:
        image = "sensor_msgs/msg/Image"
        assert bag.topics == {base + "label": image, base + "color_mask": image,
                              base + "info": "espnet_ros/msg/SegmentationInfo"}
        assert all(bag.message_count(t) == FRAMES for t in bag.topics)
        for topic, msgtype, log_ns, raw in bag.messages([base + "info", base + "color_mask"]):
            msg = bag.deserialize(raw, msgtype, topic)
            assert log_ns == msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
            if topic.endswith("info"):
                assert msg.model == MODEL and (msg.width, msg.height) == (480, 360)
            else:
                assert msg.encoding == "rgb8" and (msg.width, msg.height) == (480, 360)


def test_open_loop_faster_than_the_node_reports_drops(camvid_bag, tmp_path):
    # 100x the bag's 10 Hz: far beyond what the node sustains here
    report = run_replay(camvid_bag, _options(tmp_path, rate=100.0, outputs=("label",)), log=lambda *_: None)
    frames = report["frames"]
    assert frames["sent"] == FRAMES
    assert frames["dropped"] > 0 and frames["outputs"] + frames["dropped"] == FRAMES
    assert len(frames["dropped_stamps_ns"]) == frames["dropped"]
    counters = report["node_counters"]
    assert counters["dropped"] > 0 and report["counters_consistent"] is True
    assert "dropped" in Path(report["files"]["markdown"]).read_text()
    assert report["accuracy"]["frames"] == frames["outputs"]


def test_recorder_style_compressed_bag_with_loop_remap_and_sim_time(data_dir, interfaces_env, tmp_path):
    """A bag laid out as `ros2 bag record` writes it, compressed images, two passes, /clock."""
    from espnet_ros.data import build_dataset
    camvid = build_dataset("camvid", data_dir / "camvid", "test", limit=3)
    path = write_recorder_style_bag(tmp_path / "recorded", [camvid.read_image(i) for i in range(3)],
                                    labels=[camvid.read_label(i) for i in range(3)])
    options = _options(tmp_path / "out", closed_loop=True, loops=2, use_sim_time=True,
                       image_topic="/image_raw/compressed",
                       remaps=(("/image_raw/compressed", "/front/image_raw/compressed"),
                               ("/camera_info", "/front/camera_info")),
                       node_params={"use_camera_info": "true"})
    report = run_replay(path, options, log=lambda *_: None)
    assert report["published_image_topic"] == "/front/image_raw/compressed"
    assert report["loops"] == 2
    assert report["frames"]["sent"] == 6 and report["frames"]["dropped"] == 0
    assert report["accuracy"]["frames"] == 6 and report["accuracy"]["miou"] > 0.3
    with BagReader(report["output_bag"]) as bag:
        infos = [bag.deserialize(raw, t, topic) for topic, t, _, raw
                 in bag.messages(["/espnet_replay/espnet_segmentation/info"])]
    stamps = [m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec for m in infos]
    assert len(set(stamps)) == 6 and stamps == sorted(stamps)  # the second pass is shifted in time
    # under /clock the node's stamp-to-publish latency is small; on wall time it would be years
    assert all(abs(m.latency_ms) < 60_000 for m in infos), [m.latency_ms for m in infos]
    assert np.isfinite([m.inference_ms for m in infos]).all()
