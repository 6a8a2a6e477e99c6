import cv2
import numpy as np
import pytest
import torch

from espnet_ros.inference import Preprocessor, Renderer, Segmenter, map_ids
from espnet_ros.models import zoo
from espnet_ros.models.classes import CITYSCAPES_TRAINID_TO_LABELID


@pytest.fixture(scope="module")
def p2q8(data_dir):
    return Segmenter.from_zoo("espnet-p2q8-cityscapes")


def original_preprocess(image_bgr, norm, size):
    """The original ESPNet inference convention, step by step."""
    img = image_bgr.astype(np.float32)
    for c in range(3):
        img[:, :, c] -= norm.mean[c]
    for c in range(3):
        img[:, :, c] /= norm.std[c]
    img = cv2.resize(img, size)
    img /= 255
    return torch.from_numpy(img.transpose((2, 0, 1)))[None]


def test_preprocessing_matches_the_original_convention(city_frame):
    norm = zoo.get("espnet-p2q8-cityscapes").normalization
    ours = Preprocessor(norm, (1024, 512))([city_frame], "bgr")
    reference = original_preprocess(city_frame, norm, (1024, 512))
    assert ours.shape == reference.shape
    assert float((ours - reference).abs().max()) < 2e-5


def test_rgb_input_is_flipped_to_what_the_weights_expect(city_frame):
    norm = zoo.get("espnet-p2q8-cityscapes").normalization
    bgr = Preprocessor(norm, (320, 160))([city_frame], "bgr").clone()
    rgb = Preprocessor(norm, (320, 160))([np.ascontiguousarray(city_frame[:, :, ::-1])], "rgb")
    assert torch.equal(bgr, rgb)


def test_golden_prediction_agreement(data_dir, p2q8, city_frame):
    golden = cv2.imread(str(data_dir / "golden" / "espnet_p2q8_frankfurt_000000_000294_trainid.png"),
                        cv2.IMREAD_UNCHANGED)
    labels = p2q8.segment(city_frame, "bgr", output_size="model")
    assert labels.shape == golden.shape == (512, 1024)
    agreement = float((labels == golden).mean())
    assert agreement >= 0.999, agreement


def test_labels_come_back_at_input_size_or_model_size(p2q8):
    frame = np.random.default_rng(0).integers(0, 255, (301, 417, 3), dtype=np.uint8)
    assert p2q8.segment(frame).shape == (301, 417)
    assert p2q8.segment(frame, output_size="model").shape == (512, 1024)
    assert p2q8.segment(frame).dtype == np.uint8


def test_batch_equals_single_frames(data_dir, city_frame):
    seg = Segmenter.from_zoo("espnet-p2q3-cityscapes", input_size=(512, 256))
    other = cv2.imread(str(data_dir / "cityscapes_samples" / "frankfurt_000000_000576_leftImg8bit.png"))
    singles = [seg.segment(img).copy() for img in (city_frame, other)]
    batch = seg.segment_batch([city_frame, other])
    for a, b in zip(singles, batch):
        assert (a == b).mean() > 0.9999


def test_encoder_variant_upsamples_logits_like_the_original(data_dir, city_frame, p2q8):
    seg = Segmenter.from_zoo("espnet-c-p2q8-cityscapes")
    labels = seg.segment(city_frame, output_size="model")
    assert labels.shape == (512, 1024)
    # ESPNet-C and ESPNet agree on most of a real street scene.
    full = p2q8.segment(city_frame, output_size="model")
    assert (labels == full).mean() > 0.85


def test_camvid_checkpoint_predicts_camvid_frames(data_dir):
    seg = Segmenter.from_zoo("espnet-p2q8-camvid")
    names = sorted((data_dir / "camvid" / "test").glob("*.png"))[::60]
    correct = total = 0
    for path in names:
        image = cv2.imread(str(path))
        truth = cv2.imread(str(data_dir / "camvid" / "testannot" / path.name), cv2.IMREAD_UNCHANGED)
        labels = seg.segment(image)
        valid = truth != 11
        correct += int((labels[valid] == truth[valid]).sum())
        total += int(valid.sum())
    assert correct / total > 0.8, correct / total


def test_color_mask_and_overlay():
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    renderer = Renderer(palette, alpha=0.25)
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    rgb = renderer.color_mask(labels, "rgb")
    assert rgb.tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 0, 0]]]
    bgr = renderer.color_mask(labels, "bgr")
    assert bgr[0, 0].tolist() == [0, 0, 255]
    image = np.full((2, 2, 3), 100, np.uint8)
    over = renderer.overlay(image, labels, "rgb")
    assert over[0, 0].tolist() == [139, 75, 75]  # 0.75*100 + 0.25*255 = 138.75
    renderer.set_visible([1])
    over = renderer.overlay(image, labels, "rgb")
    assert over[0, 0].tolist() == [100, 100, 100] and over[0, 1].tolist() == [75, 139, 75]
    assert renderer.color_mask(labels, "rgb")[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        renderer.overlay(np.zeros((3, 3, 3), np.uint8), labels)


def test_trainid_to_labelid():
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    mapped = map_ids(labels, CITYSCAPES_TRAINID_TO_LABELID)
    assert mapped.ravel().tolist() == list(CITYSCAPES_TRAINID_TO_LABELID)
    assert mapped[3, 4] == 0  # void -> unlabeled


def test_bad_images_are_rejected_clearly(p2q8):
    for bad in (np.zeros((0, 5, 3), np.uint8), np.zeros((5, 5), np.uint8),
                np.zeros((5, 5, 3), np.float32)):
        with pytest.raises(ValueError, match="HxWx3 uint8"):
            p2q8.segment(bad)
