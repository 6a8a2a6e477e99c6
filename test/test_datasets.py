"""Dataset readers: real CamVid, synthetic Cityscapes / Mapillary / folder data in their layouts;
training augmentation and split statistics."""
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from synthetic_datasets import make_cityscapes, make_folder, make_mapillary

from espnet_ros.data import IGNORE_INDEX, build_dataset, read_label_png
from espnet_ros.data.cityscapes import categories, trainid_to_labelid
from espnet_ros.data.mapillary import VISTAS_TO_CITYSCAPES, vistas_to_cityscapes_category
from espnet_ros.data.stats import split_statistics
from espnet_ros.data.transforms import Augmented, ResizePass, TrainTransform
from espnet_ros.inference import Preprocessor
from espnet_ros.models import zoo
from espnet_ros.models.classes import CAMVID_CLASSES, CITYSCAPES_CLASSES

# -- CamVid (real) -------------------------------------------------------------------------

@pytest.mark.parametrize("split,count", [("train", 367), ("val", 101), ("test", 233)])
def test_camvid_splits_have_the_published_sizes(data_dir, split, count):
    ds = build_dataset("camvid", data_dir / "camvid", split)
    assert len(ds) == count
    assert ds.classes == CAMVID_CLASSES[:11]


def test_camvid_void_becomes_ignore(data_dir):
    ds = build_dataset("camvid", data_dir / "camvid", "test", limit=3)
    for i in range(len(ds)):
        image, label = ds[i]
        raw = read_label_png(ds.samples[i].label)
        assert image.shape == (360, 480, 3) and label.shape == (360, 480)
        assert set(np.unique(label)) <= set(range(11)) | {IGNORE_INDEX}
        assert np.array_equal(label == IGNORE_INDEX, raw == 11)
        assert np.array_equal(label[raw < 11], raw[raw < 11])


def test_camvid_order_follows_the_split_list(data_dir):
    ds = build_dataset("camvid", data_dir / "camvid", "train", limit=2)
    first = (data_dir / "camvid" / "train.txt").read_text().split()[0]
    assert ds.samples[0].image.name == first.rsplit("/", 1)[-1]


# -- Cityscapes (synthetic, real layout) --------------------------------------------------------

def test_cityscapes_labelids_become_trainids_with_the_official_table(tmp_path):
    make_cityscapes(tmp_path, "val")
    ds = build_dataset("cityscapes", tmp_path, "val")
    assert len(ds) == 2 and ds.classes == CITYSCAPES_CLASSES[:19]
    assert [s.name for s in ds.samples] == ["aachen_000000_000019", "bochum_000000_000313"]
    raw = read_label_png(ds.samples[0].label)
    label = ds.read_label(0)
    for label_id in np.unique(raw):
        train_id = id2label[int(label_id)].trainId
        expected = train_id if 0 <= train_id < 255 else IGNORE_INDEX
        assert set(np.unique(label[raw == label_id])) == {expected}
    assert ds.city(1) == "bochum"


def test_cityscapes_tables_agree_with_the_zoo():
    assert trainid_to_labelid() == zoo.get("espnet-p2q8-cityscapes").label_ids[:19]
    groups = categories()
    assert list(groups) == ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]
    assert sorted(i for ids in groups.values() for i in ids) == list(range(19))


def test_cityscapes_unknown_label_value_is_an_error(tmp_path):
    make_cityscapes(tmp_path, "val", label_values=[7, 40])
    ds = build_dataset("cityscapes", tmp_path, "val")
    with pytest.raises(ValueError, match="40"):
        ds.read_label(0)


def test_cityscapes_missing_ground_truth(tmp_path):
    make_cityscapes(tmp_path, "test", labels=False)
    with pytest.raises(FileNotFoundError, match="gtFine_labelIds"):
        build_dataset("cityscapes", tmp_path, "test")
    ds = build_dataset("cityscapes", tmp_path, "test", require_labels=False)
    assert len(ds) == 2 and not ds.has_labels


# -- Mapillary Vistas (synthetic, real layout) --------------------------------------------------

def test_vistas_mapping_covers_the_66_v12_classes():
    assert len(VISTAS_TO_CITYSCAPES) == 66
    targets = {t for t in VISTAS_TO_CITYSCAPES.values() if t}
    assert targets == set(CITYSCAPES_CLASSES[:19])  # every Cityscapes class is reachable
    cats = vistas_to_cityscapes_category()
    assert cats["construction--flat--road"] == "flat"
    assert cats["object--vehicle--car"] == "vehicle"
    assert cats["construction--flat--parking"] is None
    assert set(filter(None, cats.values())) == set(categories())


@pytest.mark.parametrize("layout", ["v1.2", "v2.0"])
def test_mapillary_to_cityscapes(tmp_path, layout):
    keys = make_mapillary(tmp_path, "validation", count=2, layout=layout)
    ds = build_dataset("mapillary", tmp_path, "val")  # "val" is an alias of "validation"
    assert [s.name for s in ds.samples] == keys
    assert ds.classes == CITYSCAPES_CLASSES[:19] and list(ds.categories) == list(categories())
    raw = read_label_png(ds.samples[0].label)  # palette PNG: indices, not colours
    assert raw.ndim == 2 and raw.max() < 66
    label = ds.read_label(0)
    names = list(VISTAS_TO_CITYSCAPES)
    for value in np.unique(raw):
        target = VISTAS_TO_CITYSCAPES[names[value]]
        expected = CITYSCAPES_CLASSES.index(target) if target else IGNORE_INDEX
        assert set(np.unique(label[raw == value])) == {expected}


def test_mapillary_native_classes(tmp_path):
    make_mapillary(tmp_path, "training", count=1)
    ds = build_dataset("mapillary", tmp_path, "train", target="native")
    assert ds.num_classes == 65 and "void--unlabeled" not in ds.classes
    raw, label = read_label_png(ds.samples[0].label), ds.read_label(0)
    assert np.array_equal(label == IGNORE_INDEX, raw == 65)


# -- folder dataset -------------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [("only",), ("bg", "a", "b")])
def test_folder_dataset_any_class_count(tmp_path, classes):
    make_folder(tmp_path, classes, count=2, ignore_index=200)
    ds = build_dataset("folder", tmp_path, "train")
    assert ds.classes == classes and len(ds) == 2 and len(ds.palette) == len(classes)
    label = ds.read_label(0)
    raw = read_label_png(ds.samples[0].label)
    assert np.array_equal(label == IGNORE_INDEX, raw == 200)  # its ignore value -> 255


def test_folder_dataset_errors(tmp_path):
    (tmp_path / "classes.yaml").write_text("classes: []\n")
    with pytest.raises(ValueError, match="classes"):
        build_dataset("folder", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown dataset kind"):
        build_dataset("kitti", tmp_path, "train")


# -- augmentation and statistics ------------------------------------------------------------------

def _transform(**kwargs):
    args = dict(normalization=zoo.CAMVID_NORM, base_size=(64, 48), crop_size=(64, 48))
    args.update(kwargs)
    return TrainTransform(**args)


def test_transform_at_scale_one_matches_the_inference_preprocessing():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (48, 64), dtype=np.uint8)
    data, target = _transform(flip=False)(image, label, np.random.default_rng(1))
    reference = Preprocessor(zoo.CAMVID_NORM, (64, 48))([image], "bgr")[0].numpy()
    assert data.shape == (3, 48, 64) and data.dtype == np.float32
    assert np.abs(data - reference).max() < 1e-5
    assert np.array_equal(target, label) and target.dtype == np.int64


def test_flip_is_horizontal():
    label = np.tile(np.arange(64, dtype=np.uint8) // 8, (48, 1))  # varies left to right only
    image = np.dstack([label * 20] * 3).astype(np.uint8)
    flips = 0
    for seed in range(8):
        _, target = _transform()(image, label, np.random.default_rng(seed))
        assert np.array_equal(target, label) or np.array_equal(target, label[:, ::-1])
        flips += np.array_equal(target, label[:, ::-1])
    assert 0 < flips < 8


def test_multiscale_crop_pads_with_ignore_and_void_becomes_a_class():
    label = np.full((48, 64), IGNORE_INDEX, np.uint8)
    label[:, :32] = 3
    transform = _transform(scales=(0.5,), void_id=11, flip=False)
    _, target = transform(np.zeros((48, 64, 3), np.uint8), label, np.random.default_rng(0))
    assert target.shape == (48, 64)
    assert set(np.unique(target[:24, :32])) <= {3, 11}          # the scaled frame
    assert (target[24:] == IGNORE_INDEX).all() and (target[:, 32:] == IGNORE_INDEX).all()  # padding


def test_label_stride_matches_the_encoder_output_size():
    transform = _transform(base_size=(70, 50), crop_size=(70, 50), label_stride=8)
    data, target = transform(np.zeros((50, 70, 3), np.uint8), np.zeros((50, 70), np.uint8),
                             np.random.default_rng(0))
    assert data.shape == (3, 50, 70) and target.shape == (7, 9)  # ceil(50/8), ceil(70/8)


def test_augmentation_depends_only_on_seed_epoch_pass_and_index(data_dir):
    ds = build_dataset("camvid", data_dir / "camvid", "train", limit=3)
    transform = _transform(base_size=(96, 72), scales=(0.75, 1.0, 1.5))
    passes = [transform, ResizePass(zoo.CAMVID_NORM, (64, 48), crop_resize=4)]
    a, b = Augmented(ds, passes, seed=5), Augmented(ds, passes, seed=5)
    for key in [(0, 0, 2), (3, 0, 1), (1, 1, 0)]:
        assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key]))
    assert not np.array_equal(a[(0, 0, 1)][0], a[(1, 0, 1)][0])
    assert a[(0, 1, 1)][0].shape == (3, 48, 64)  # the second pass resizes the whole frame


def test_split_statistics(tmp_path):
    make_folder(tmp_path, ("a", "b"), count=2)
    ds = build_dataset("folder", tmp_path, "train")
    stats = split_statistics(ds, void_id=2)
    labels = [ds.read_label(i) for i in range(len(ds))]
    expected = [sum(int((lab == c).sum()) for lab in labels) for c in (0, 1, IGNORE_INDEX)]
    assert stats.histogram == tuple(expected)
    image = ds.read_image(0).reshape(-1, 3)
    assert stats.images == 2 and len(stats.mean_bgr) == 3
    assert min(stats.mean_bgr) >= 0 and image.dtype == np.uint8
