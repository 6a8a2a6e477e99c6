import json
import shutil
import subprocess
import sys

import cv2
import numpy as np


def cli(*args):
    return subprocess.run([sys.executable, "-m", "espnet_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_predict_writes_label_color_overlay_for_the_sample_frames(data_dir, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in (data_dir / "cityscapes_samples").glob("*.png"):
        shutil.copy(path, frames / path.name)
    (frames / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    result = cli("predict", frames, "--model", "espnet-p2q3-cityscapes", "--out", out,
                 "--label-ids", "--size", "512x256")
    assert result.returncode == 1, result.stderr  # one unreadable file, the others done
    assert "skipping" in result.stderr and "broken.png" in result.stderr
    for stem in ("frankfurt_000000_000294_leftImg8bit", "frankfurt_000000_000576_leftImg8bit"):
        label = cv2.imread(str(out / (stem + "_label.png")), cv2.IMREAD_UNCHANGED)
        color = cv2.imread(str(out / (stem + "_color.png")))
        overlay = cv2.imread(str(out / (stem + "_overlay.png")))
        ids = cv2.imread(str(out / (stem + "_labelIds.png")), cv2.IMREAD_UNCHANGED)
        assert label.shape == (1024, 2048) and label.max() <= 19
        assert color.shape == overlay.shape == (1024, 2048, 3)
        assert set(np.unique(ids)) <= {0, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                                       27, 28, 31, 32, 33}
        assert len(np.unique(label)) >= 5  # a street scene, not a constant map
    assert "wrote 2 result(s)" in result.stdout


def test_predict_unknown_model_and_missing_weights(tmp_path, data_dir):
    result = cli("predict", data_dir / "cityscapes_samples", "--model", "nope", "--out", tmp_path)
    assert result.returncode == 2 and "unknown model 'nope'" in result.stderr
    result = cli("predict", data_dir / "cityscapes_samples", "--model", "enet", "--out", tmp_path)
    assert result.returncode == 2 and "without published weights" in result.stderr


def test_models_table_and_json():
    result = cli("models")
    assert result.returncode == 0
    assert "espnet-p2q8-cityscapes" in result.stdout and "364,569" in result.stdout
    rows = json.loads(cli("models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["espnet-c-p2q8-cityscapes"]["parameters"] == 349449
    assert by_name["enet"]["gmacs_1024x512"] > 0


def test_info_lists_backends():
    result = cli("info")
    assert result.returncode == 0
    for key in ("torch", "backend onnxruntime", "backend torch2trt", "rclpy"):
        assert key in result.stdout


def test_node_subcommand_hands_every_argument_to_ros(monkeypatch):
    """`espnet-ros node --ros-args -p model:=...` reaches the node untouched by argparse."""
    from espnet_ros.cli import main, node
    seen = []
    monkeypatch.setattr(node, "run_ros", lambda args: seen.append(list(args)) or 0)
    assert main(["node", "--ros-args", "-p", "model:=espnet-p2q3-cityscapes", "-r",
                 "image:=/cam/image_raw"]) == 0
    assert seen == [["--ros-args", "-p", "model:=espnet-p2q3-cityscapes", "-r",
                     "image:=/cam/image_raw"]]
