import cv2
import numpy as np
import pytest

from espnet_ros.models import create_model, zoo
from espnet_ros.models.complexity import count_parameters

PUBLISHED = [e.name for e in zoo.entries() if e.weights_file]


def test_zoo_lists_every_published_checkpoint():
    files = sorted(e.weights_file for e in zoo.entries() if e.weights_file)
    assert files == sorted(
        ["decoder/espnet_p_2_q_%d.pth" % q for q in (3, 5, 8)]
        + ["decoder/espnet_p_2_q_8_camvid.pth"]
        + ["encoder/espnet_p_2_q_%d.pth" % q for q in (3, 5, 8)])


def test_every_shared_checkpoint_is_in_the_zoo_with_its_checksum(data_dir):
    from espnet_ros.models.weights import sha256_of
    on_disk = sorted((data_dir / "espnet_pretrained").rglob("*.pth"))
    by_file = {e.weights_file: e for e in zoo.entries() if e.weights_file}
    assert len(on_disk) == len(by_file)
    for path in on_disk:
        rel = path.relative_to(data_dir / "espnet_pretrained").as_posix()
        assert sha256_of(path) == by_file[rel].sha256


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_checkpoints_load_strictly(data_dir, name):
    model, entry = create_model(name)  # strict=True inside
    assert not model.training
    assert entry.url.startswith("https://github.com/sacmehta/ESPNet/")
    assert len(entry.palette) == entry.num_classes
    assert entry.void_id == entry.num_classes - 1
    assert count_parameters(model) == entry.parameters


def test_published_parameter_counts_through_the_zoo(data_dir):
    counts = {n: count_parameters(create_model(n)[0]) for n in
              ("espnet-p2q8-cityscapes", "espnet-p2q5-cityscapes", "espnet-p2q3-cityscapes",
               "espnet-c-p2q8-cityscapes")}
    assert counts == {"espnet-p2q8-cityscapes": 364569, "espnet-p2q5-cityscapes": 267417,
                      "espnet-p2q3-cityscapes": 202649, "espnet-c-p2q8-cityscapes": 349449}


def test_camvid_normalization_is_the_training_split_statistics(data_dir):
    """Mean over training images of each image's per-channel mean and std, BGR, 0..255."""
    names = [line.split()[0].split("/")[-1] for line in
             (data_dir / "camvid" / "train.txt").read_text().splitlines() if line.strip()]
    means, stds = np.zeros(3), np.zeros(3)
    for name in names:
        image = cv2.imread(str(data_dir / "camvid" / "train" / name))
        for c in range(3):
            means[c] += np.mean(image[:, :, c])
            stds[c] += np.std(image[:, :, c])
    norm = zoo.get("espnet-p2q8-camvid").normalization
    assert norm.order == "bgr"
    np.testing.assert_allclose(norm.mean, means / len(names), atol=1e-4)
    np.testing.assert_allclose(norm.std, stds / len(names), atol=1e-4)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match="espnet-p2q8-cityscapes"):
        zoo.get("espnet-p9")
