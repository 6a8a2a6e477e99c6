"""The "your own robot's data" walkthrough of docs/training.md, step by step as a user types it, on a tiny
synthetic folder dataset: fine-tune the published Cityscapes model to its classes, evaluate
the checkpoint, make a rosbag of the validation frames and score the checkpoint on it, then
serve it with ``ros2 launch espnet_ros segment.launch.py model:=<checkpoint>``."""
import json
import signal
import subprocess
import sys

import cv2
import pytest
from synthetic_datasets import make_folder

from espnet_ros.training import checkpoint

CLASSES = ("floor", "wall", "obstacle")
SIZE = (96, 72)


def espnet_ros(*args, env=None, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "espnet_ros.cli"] + [str(a) for a in args],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("own_data")
    root = make_folder(tmp / "my_robot", CLASSES, count=6, size=SIZE)
    # 1. fine-tune (the docs' command with the sizes shrunk for CI)
    log = espnet_ros("train", "--recipe", "finetune", "--init-from", "espnet-p2q3-cityscapes",
                     "--dataset", "folder", "--data-root", root, "--name", "my-robot",
                     "--freeze-encoder-epochs", "1", "--epochs", "2", "--batch-size", "3",
                     "--crop", "%dx%d" % SIZE, "--set", "input_size=[%d, %d]" % SIZE,
                     "--set", "normalization=init", "--device", "cpu", "--workers", "0",
                     "--no-progress", "--out", tmp / "run")
    return {"tmp": tmp, "root": root, "log": log, "best": tmp / "run" / "finetune" / "best.pth"}


def test_fine_tune_reinitialises_the_class_tensors_and_keeps_the_rest(walkthrough):
    log = walkthrough["log"]
    assert "finetune: initialised" in log and "from espnet-p2q3-cityscapes" in log
    assert "re-initialised (shape differs)" in log and "encoder.classifier.conv.weight" in log
    assert "stay frozen for the first 1 epoch(s)" in log
    saved = checkpoint.load(walkthrough["best"])
    entry = checkpoint.entry_from_dict(saved["entry"])
    # the checkpoint carries what the node and tools need: classes (+ void), palette,
    # the source's normalisation, input size, the source's architecture (p2q3)
    assert entry.classes == CLASSES + ("void",) and entry.void_id == 3
    assert len(entry.palette) == 4 and entry.input_size == SIZE
    assert entry.normalization.mean == pytest.approx((72.3923111, 82.90893555, 73.15840149))
    assert entry.arch == "espnet" and entry.arch_args["alpha3"] == 3


def test_eval_and_bag_eval_of_the_checkpoint_agree(walkthrough):
    tmp, root, best = walkthrough["tmp"], walkthrough["root"], walkthrough["best"]
    espnet_ros("eval", "--model", best, "--dataset", "folder", "--data-root", root, "--split", "val",
               "--out", tmp / "eval", "--no-plot", "--no-progress")
    offline = json.loads((tmp / "eval" / "eval.json").read_text())
    assert offline["model"] == "my-robot" and offline["images"] == 6
    espnet_ros("bag", "make", root, "--dataset", "folder", "--split", "val", "--out", tmp / "bag")
    espnet_ros("bag", "eval", tmp / "bag", "--model", best, "--out", tmp / "bag_eval")
    from_bag = json.loads((tmp / "bag_eval" / "eval.json").read_text())
    assert from_bag["accuracy"]["frames"] == 6
    assert from_bag["accuracy"]["miou"] == pytest.approx(offline["miou"], abs=1e-9)


def test_ros2_launch_serves_the_checkpoint(walkthrough, ros2_env):
    pytest.importorskip("rclpy")
    from rosutil import Started, padded_image, stamp, start_probe, stop_probe
    from sensor_msgs.msg import Image

    tmp, best = walkthrough["tmp"], walkthrough["best"]
    frame = cv2.imread(str(walkthrough["root"] / "images" / "val" / "f000.png"))
    launch = Started(["ros2", "launch", "espnet_ros", "segment.launch.py", "namespace:=robot",
                      "image:=/robot/image_raw", "model:=%s" % best], ros2_env, tmp / "launch.log")
    probe = start_probe("espnet_own_data_probe")
    topic = "/robot/espnet_segmentation/label"
    try:
        probe.subscribe(Image, topic)
        assert probe.spin_until(lambda: probe.node.count_publishers(topic) > 0, 180), launch.log()
        assert launch.wait_for_log("serving my-robot", 120), launch.log()
        publisher = probe.node.create_publisher(Image, "/robot/image_raw", 5)
        for _ in range(240):  # best-effort input: resend until answered
            publisher.publish(padded_image(frame, "bgr8", stamp_msg=stamp(4200, 7), frame_id="cam"))
            if probe.spin_until(lambda: probe.received[topic], 0.5):
                break
        label = probe.messages(topic)[-1]
        assert (label.header.stamp.sec, label.header.frame_id) == (4200, "cam")
        assert (label.width, label.height, label.encoding) == (SIZE[0], SIZE[1], "mono8")
        assert max(label.data) <= 3  # the checkpoint's 3 classes + void
    finally:
        stop_probe(probe)
        code, _ = launch.stop(signal.SIGINT)
    assert code == 0, launch.log()
