"""Bags without a ROS graph: make, read back, CDR against rclpy, offline eval, and clear errors."""
import os

import cv2
import numpy as np
import pytest
import yaml

from espnet_ros.bag import BagError
from espnet_ros.bag.evaluate import evaluate_bag, node_config
from espnet_ros.bag.io import BagReader, BagWriter, iter_frames, label_message, typestore
from espnet_ros.bag.make import dataset_source, make_bag, media_source
from espnet_ros.cli import main as cli_main
from espnet_ros.messages.cdr import cdr_restamp, cdr_stamp
from espnet_ros.tools.bag_replay import ReplayOptions, run_replay

MODEL = "espnet-p2q8-camvid"
SIZE = (240, 180)
START = 1000.0  # stamp of the first frame, seconds


@pytest.fixture(scope="module")
def camvid(data_dir):
    from espnet_ros.data import build_dataset
    return build_dataset("camvid", data_dir / "camvid", "test", limit=4)


@pytest.fixture(scope="module")
def camvid_bag(camvid, tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "camvid4"
    make_bag(path, dataset_source("camvid", camvid.root, "test", limit=4), rate=10.0,
             start_time=START, source_name="camvid test")
    return path


def _metadata(path):
    return yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


@pytest.mark.parametrize("storage,version,encoding", [("mcap", 8, "bgr8"), ("sqlite3", 9, "rgb8")])
def test_make_writes_images_info_and_labels_with_one_stamp_per_frame(camvid, tmp_path, storage, version,
                                                                    encoding):
    path = tmp_path / "bag"
    summary = make_bag(path, dataset_source("camvid", camvid.root, "test", limit=3), rate=5.0,
                       encoding=encoding, storage=storage, version=version, start_time=START)
    meta = _metadata(path)
    assert meta["version"] == version and meta["storage_identifier"] == storage
    # the change that keeps version 9 out of Humble: QoS profiles as a YAML list, not a string
    qos = meta["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"]
    assert isinstance(qos, str if version == 8 else list)
    assert summary["frames"] == summary["labelled"] == 3
    assert meta["custom_data"]["espnet_ros.dataset"] == "camvid"
    with BagReader(path) as bag:
        assert bag.topics == {"/camera/image": "sensor_msgs/msg/Image",
                              "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                              "/camera/label_gt": "sensor_msgs/msg/Image"}
        stamps = {}
        for topic, msgtype, log_ns, raw in bag.messages(list(bag.topics)):
            msg = bag.deserialize(raw, msgtype, topic)
            stamp = msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
            assert stamp == log_ns
            stamps.setdefault(topic, []).append(stamp)
        expected = [int(START * 1e9) + i * 200_000_000 for i in range(3)]
        assert all(v == expected for v in stamps.values())
        topics = bag.choose_topics(need_label=True)
        frames = list(iter_frames(bag, topics))
    from espnet_ros.messages.decode import image_to_bgr
    for index, (_, msg, gt) in enumerate(frames):
        assert msg.encoding == encoding
        image, label = camvid[index]
        np.testing.assert_array_equal(image_to_bgr(msg), image)
        np.testing.assert_array_equal(gt, label)  # train ids, void -> 255


def test_bags_cdr_is_ros2s_in_both_directions(camvid_bag, tmp_path):
    """rosbags' CDR deserializes with rclpy and rclpy's with rosbags (padding bytes may differ)."""
    pytest.importorskip("rclpy")
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    classes = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo}
    with BagReader(camvid_bag) as bag:
        for topic, msgtype, _, raw in bag.messages(list(bag.topics)):
            ours = bag.deserialize(raw, msgtype, topic)
            ros = deserialize_message(bytes(raw), classes[msgtype])
            assert ros.header.stamp.sec == ours.header.stamp.sec
            assert ros.header.frame_id == ours.header.frame_id == "camera"
            if msgtype.endswith("Image"):
                assert (ros.width, ros.height, ros.encoding, ros.step) == \
                    (ours.width, ours.height, ours.encoding, ours.step)
                assert bytes(ros.data) == ours.data.tobytes()
            else:
                np.testing.assert_array_equal(np.asarray(ros.k), ours.k)
            back = typestore().deserialize_cdr(serialize_message(ros), msgtype)
            assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == \
                (ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id)
            if msgtype.endswith("Image"):
                np.testing.assert_array_equal(back.data, ours.data)
            assert cdr_stamp(raw) == ours.header.stamp.sec * 10 ** 9 + ours.header.stamp.nanosec
    msg = CompressedImage(format="jpeg")
    msg.header.stamp.sec, msg.header.stamp.nanosec = 7, 5
    msg.data = b"\xff\xd8abc"
    restamped = deserialize_message(cdr_restamp(serialize_message(msg), 3 * 10 ** 9 + 4), CompressedImage)
    assert (restamped.header.stamp.sec, restamped.header.stamp.nanosec) == (3, 4)
    assert bytes(restamped.data) == b"\xff\xd8abc"


@pytest.fixture(scope="module")
def pipeline():
    from espnet_ros.bag.evaluate import build_pipeline
    return build_pipeline(node_config(MODEL, size=SIZE))


def test_offline_eval_equals_the_model_on_the_dataset_files(camvid, camvid_bag, pipeline, tmp_path):
    from espnet_ros.bag.scoring import Scorer
    scorer = Scorer(pipeline.entry)  # the same model on the dataset files directly, no bag
    for index in range(4):
        image, label = camvid[index]
        scorer.add(pipeline.segmenter.segment(image, "bgr", "input"), label)
    direct = scorer.summary()
    config = node_config(MODEL, size=SIZE)
    report = evaluate_bag(camvid_bag, config, pipeline=pipeline)
    assert report["accuracy"]["frames"] == 4 and report["frames_unlabelled"] == 0
    assert report["accuracy"]["miou"] == direct["miou"]
    assert report["accuracy"]["per_class_iou"] == direct["per_class_iou"]
    assert 0.3 < direct["miou"] < 0.9  # the published CamVid model on real frames
    # lossless compression gives the same frames, so the same score
    png = tmp_path / "png"
    make_bag(png, dataset_source("camvid", camvid.root, "test", limit=4), encoding="png", start_time=START)
    assert evaluate_bag(png, config, pipeline=pipeline)["accuracy"]["miou"] == direct["miou"]
    jpeg = tmp_path / "jpeg"
    make_bag(jpeg, dataset_source("camvid", camvid.root, "test", limit=2), encoding="jpeg", storage="sqlite3")
    with BagReader(jpeg) as bag:
        assert bag.choose_topics().image == "/camera/image/compressed"
    assert cli_main(["bag", "eval", str(jpeg), "--model", MODEL, "--size", "240x180",
                     "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "eval.json").is_file() and (tmp_path / "report" / "eval.md").is_file()


def write_recorder_style_bag(path, frames, labels=None, stamp0=1_600_000_000):
    """A bag as `ros2 bag record /image_raw /image_raw/compressed /camera_info` writes it:
    rosbags' own writer and serializer, the driver's topic names, sensor-data QoS metadata."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2 import StoragePlugin, Writer

    from espnet_ros.bag.io import camera_info_message, image_message
    store = typestore()
    zero = QosTime(0, 0)
    sensor_qos = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                     zero, zero, QosLiveliness.AUTOMATIC, zero, False)
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {}
        for topic, msgtype in (("/image_raw", "sensor_msgs/msg/Image"),
                               ("/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
                               ("/camera_info", "sensor_msgs/msg/CameraInfo")):
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store,
                                                 offered_qos_profiles=[sensor_qos])
        if labels is not None:
            conns["/camera/label_gt"] = writer.add_connection("/camera/label_gt", "sensor_msgs/msg/Image",
                                                              typestore=store)
        for index, image in enumerate(frames):
            stamp = stamp0 * 10 ** 9 + index * 100_000_000
            log = stamp + 3_000_000  # a recorder receives a little after the capture
            messages = {"/image_raw": image_message(image, "rgb8", stamp, "cam"),
                        "/image_raw/compressed": image_message(image, "jpeg", stamp, "cam"),
                        "/camera_info": camera_info_message(image.shape[1], image.shape[0], stamp, "cam")}
            if labels is not None:
                messages["/camera/label_gt"] = label_message(labels[index], stamp, "cam")
            for topic, msg in messages.items():
                writer.write(conns[topic], log, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def test_recorder_style_bag_is_read_by_topic(camvid, tmp_path):
    images = [camvid.read_image(i) for i in range(2)]
    path = write_recorder_style_bag(tmp_path / "recorded", images)
    with BagReader(path) as bag:
        topics = bag.choose_topics()
        assert (topics.image, topics.camera_info, topics.label) == ("/image_raw", "/camera_info", None)
        compressed = bag.choose_topics("/image_raw/compressed")
        assert compressed.image_type == "sensor_msgs/msg/CompressedImage"
        assert compressed.camera_info == "/camera_info"
        from espnet_ros.bag.io import decode_image
        raw = [decode_image(m, topics.image_type) for _, m, _ in iter_frames(bag, topics)]
        np.testing.assert_array_equal(raw[1], images[1])
    with pytest.raises(BagError, match="no ground-truth label topic /camera/label_gt"):
        evaluate_bag(path, node_config(MODEL, size=SIZE))


def test_make_from_image_folder_video_and_folder_dataset(camvid, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / ("%02d.png" % i)), camvid.read_image(i))
    summary = make_bag(tmp_path / "from_folder", media_source(folder), rate=2.0)
    assert summary["frames"] == 3 and summary["labelled"] == 0 and "/camera/label_gt" not in summary["topics"]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (480, 360))
    for i in range(3):
        writer.write(camvid.read_image(i))
    writer.release()
    summary = make_bag(tmp_path / "from_video", media_source(video, limit=2), size=(240, 180))
    assert summary["frames"] == 2 and summary["size"] == (240, 180)
    own = _own_dataset(tmp_path / "own", camvid)
    summary = make_bag(tmp_path / "from_dataset", dataset_source("folder", own, "val"), storage="sqlite3")
    assert summary["labelled"] == 2
    with BagReader(tmp_path / "from_dataset") as bag:
        gts = [gt for _, _, gt in iter_frames(bag, bag.choose_topics(need_label=True))]
    np.testing.assert_array_equal(gts[0], camvid.read_label(0))


def _own_dataset(root, camvid, label_size=None):
    """A folder dataset (images/, labels/, classes.yaml) from two CamVid frames."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "classes.yaml").write_text(yaml.safe_dump({"classes": list(camvid.classes)}))
    for i in range(2):
        image, label = camvid[i]
        if label_size:
            label = cv2.resize(label, label_size, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(root / "images" / "val" / ("f%d.png" % i)), image)
        cv2.imwrite(str(root / "labels" / "val" / ("f%d.png" % i)), label)
    return root


# ------------------------------------------------------------------------------------ errors
def _cli_error(capsys, *argv):
    code = cli_main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def _copy(src, dst):
    import shutil
    shutil.copytree(str(src), str(dst))
    return dst


def test_corrupt_and_truncated_bags_are_clear_errors(camvid_bag, camvid, pipeline, tmp_path,
                                                    capsys):
    # pipeline: the weights are fetched before, not in the middle of, the one-line errors
    truncated = _copy(camvid_bag, tmp_path / "truncated")
    data = next(truncated.glob("*.mcap"))
    os.truncate(str(data), data.stat().st_size // 2)
    err = _cli_error(capsys, "bag", "eval", str(truncated), "--model", MODEL)
    assert "cannot open bag" in err and "truncated" in err
    damaged = _copy(camvid_bag, tmp_path / "damaged")  # records in the middle overwritten
    data = next(damaged.glob("*.mcap"))
    blob = bytearray(data.read_bytes())
    blob[200:300_000] = b"\x5a" * (300_000 - 200)
    data.write_bytes(bytes(blob))
    err = _cli_error(capsys, "bag", "eval", str(damaged), "--model", MODEL, "--size", "240x180")
    assert "is corrupt or truncated: read" in err
    sqlite = tmp_path / "sqlite"
    make_bag(sqlite, dataset_source("camvid", camvid.root, "test", limit=2), storage="sqlite3")
    data = next(sqlite.glob("*.db3"))
    os.truncate(str(data), data.stat().st_size // 3)
    assert "malformed" in _cli_error(capsys, "bag", "eval", str(sqlite), "--model", MODEL)
    (sqlite / "metadata.yaml").write_text("rosbag2_bagfile_information: [unbalanced\n")
    assert "cannot open bag" in _cli_error(capsys, "bag", "eval", str(sqlite))
    assert "does not exist" in _cli_error(capsys, "bag", "eval", str(tmp_path / "nothing"))
    not_a_bag = tmp_path / "empty"
    not_a_bag.mkdir()
    assert "cannot open bag" in _cli_error(capsys, "bag", "replay", str(not_a_bag))


def test_missing_topics_are_clear_errors(camvid_bag, camvid, tmp_path, capsys):
    err = _cli_error(capsys, "bag", "eval", str(camvid_bag), "--image-topic", "/front/image_raw")
    assert "no image topic /front/image_raw" in err and "/camera/image (sensor_msgs/msg/Image)" in err
    err = _cli_error(capsys, "bag", "replay", str(camvid_bag), "--label-topic", "/nope", "--model", MODEL)
    assert "no ground-truth label topic /nope" in err
    unlabelled = tmp_path / "unlabelled"
    make_bag(unlabelled, dataset_source("camvid", camvid.root, "test", limit=1), labels=False)
    assert "no ground-truth label topic" in _cli_error(capsys, "bag", "eval", str(unlabelled))
    only_labels = tmp_path / "only_labels"
    with BagWriter(only_labels) as bag:
        bag.write("/camera/label_gt", 1, label_message(camvid.read_label(0), 1, "camera"))
    assert "has no image topic" in _cli_error(capsys, "bag", "eval", str(only_labels))


def test_label_and_image_size_mismatch_is_a_clear_error(camvid, tmp_path, capsys):
    own = _own_dataset(tmp_path / "own", camvid, label_size=(240, 180))
    err = _cli_error(capsys, "bag", "make", str(own), "--dataset", "folder", "--split", "val",
                     "--out", str(tmp_path / "never"))
    assert "label/image size mismatch for f0: label 240x180, image 480x360" in err
    assert not (tmp_path / "never").exists()
    mismatched = tmp_path / "mismatched"
    from espnet_ros.bag.io import image_message
    with BagWriter(mismatched) as bag:
        for i in range(2):
            bag.write("/camera/image", i + 1, image_message(camvid.read_image(i), "bgr8", i + 1, "camera"))
            label = cv2.resize(camvid.read_label(i), (240, 180), interpolation=cv2.INTER_NEAREST)
            bag.write("/camera/label_gt", i + 1, label_message(label, i + 1, "camera"))
    err = _cli_error(capsys, "bag", "eval", str(mismatched), "--model", MODEL, "--size", "240x180")
    assert "label/image size mismatch" in err and "ground truth 240x180, image 480x360" in err
    # replay checks before starting any node
    with pytest.raises(BagError, match="label/image size mismatch"):
        run_replay(mismatched, ReplayOptions(model=MODEL, out_dir=tmp_path / "replay"))


def test_existing_output_is_not_overwritten_unless_asked(camvid, camvid_bag, tmp_path, capsys):
    err = _cli_error(capsys, "bag", "make", str(camvid.root), "--dataset", "camvid", "--limit", "1",
                     "--out", str(camvid_bag))
    assert "exists already" in err
    target = tmp_path / "again"
    for _ in range(2):
        assert cli_main(["bag", "make", str(camvid.root), "--dataset", "camvid", "--limit", "1",
                         "--out", str(target), "--overwrite", "--encoding", "png"]) == 0
    assert _metadata(target)["message_count"] == 3
