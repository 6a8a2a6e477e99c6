"""Evaluation: parity with the official Cityscapes evaluator, the eval CLI on real CamVid,
cross-dataset (Cityscapes model on Vistas), the submission export, mismatches."""
import copy
import json

import cv2
import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
from synthetic_datasets import blocky, make_cityscapes, make_mapillary

from espnet_ros.cli import main
from espnet_ros.data import build_dataset
from espnet_ros.data.cityscapes import trainid_to_labelid
from espnet_ros.inference import Segmenter
from espnet_ros.training.evaluate import evaluate, evaluate_label_files

FRAMES = (("aachen", 0, 19), ("bochum", 0, 313), ("zurich", 1, 4))
SIZE = (2048, 1024)


def official_scores(pred_files, gt_files):
    args = copy.copy(official.args)
    args.evalInstLevelScore = False  # needs instanceIds files; pixel-level IoU is what we compare
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    return official.evaluateImgLists([str(p) for p in pred_files], [str(g) for g in gt_files], args)


def assert_parity(ours, theirs):
    for name, iou in zip(ours.classes, ours.scores.iou):
        expected = theirs["classScores"][name]
        assert (np.isnan(iou) and np.isnan(expected)) or abs(iou - expected) <= 1e-6, name
    assert abs(ours.miou - theirs["averageScoreClasses"]) <= 1e-6
    for name, iou in ours.categories.items():
        assert abs(iou - theirs["categoryScores"][name]) <= 1e-6, name
    assert abs(ours.category_miou - theirs["averageScoreCategories"]) <= 1e-6


def test_class_and_category_iou_equal_the_official_evaluator(tmp_path):
    """Ground truth with every label id (ignored ones included); predictions with every label
    id too (ignored ids, void): written to disk, read by both evaluators."""
    gt_files = make_cityscapes(tmp_path / "cs", "val", FRAMES, size=SIZE, seed=3)
    rng = np.random.default_rng(7)
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    pred_files = []
    for gt_file in gt_files:
        gt = cv2.imread(str(gt_file), cv2.IMREAD_UNCHANGED)
        noise = blocky(rng, range(34), SIZE, cells=(64, 32))
        pred = np.where(rng.random(gt.shape) < 0.6, gt, noise).astype(np.uint8)
        path = pred_dir / gt_file.name.replace("_gtFine_labelIds", "_leftImg8bit")
        cv2.imwrite(str(path), pred)
        pred_files.append(path)
    dataset = build_dataset("cityscapes", tmp_path / "cs", "val")
    ours = evaluate_label_files(pred_files, gt_files, dataset)
    assert_parity(ours, official_scores(pred_files, gt_files))


@pytest.fixture(scope="module")
def city_segmenter(data_dir):
    return Segmenter.from_zoo("espnet-p2q3-cityscapes", input_size=(512, 256))


def test_model_evaluation_and_export_equal_the_official_evaluator(tmp_path, city_segmenter):
    """The eval path (model -> labels at 2048x1024 -> confusion matrix) and the submission
    files it exports, scored by the official evaluator, agree."""
    frames = FRAMES[:2]
    gt_files = make_cityscapes(tmp_path / "cs", "val", frames, size=SIZE, seed=5,
                               label_values=[0, 7, 8, 11, 21, 23, 26])
    export = tmp_path / "submission"
    code = main(["eval", "--model", "espnet-p2q3-cityscapes", "--size", "512x256",
                 "--dataset", "cityscapes", "--data-root", str(tmp_path / "cs"), "--split", "val",
                 "--out", str(tmp_path / "report"), "--export-cityscapes", str(export),
                 "--no-plot", "--no-progress"])
    assert code == 0
    pred_files = [export / city / ("%s_%06d_%06d_leftImg8bit.png" % (city, seq, frame))
                  for city, seq, frame in frames]
    for path in pred_files:
        pred = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert pred.shape == (1024, 2048) and set(np.unique(pred)) <= set(trainid_to_labelid()) | {0}
    theirs = official_scores(pred_files, gt_files)
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    for name, iou in report["class_iou"].items():
        expected = theirs["classScores"][name]
        assert (iou is None and np.isnan(expected)) or abs(iou - expected) <= 1e-6, name
    for name, iou in report["category_iou"].items():
        assert abs(iou - theirs["categoryScores"][name]) <= 1e-6, name


def test_export_of_a_split_without_ground_truth(tmp_path):
    make_cityscapes(tmp_path / "cs", "test", FRAMES[:1], size=(256, 128), labels=False)
    out = tmp_path / "submission"
    assert main(["eval", "--model", "espnet-p2q3-cityscapes", "--size", "256x128", "--dataset",
                 "cityscapes", "--data-root", str(tmp_path / "cs"), "--split", "test",
                 "--export-cityscapes", str(out), "--no-progress"]) == 0
    files = sorted(out.rglob("*.png"))
    assert [f.relative_to(out).as_posix() for f in files] == ["aachen/aachen_000000_000019_leftImg8bit.png"]
    assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape == (1024, 2048)


def test_camvid_published_checkpoint_on_real_frames(data_dir, tmp_path, capsys):
    """A few CamVid test frames through `espnet-ros eval`; the full split is in docs/training.md."""
    out = tmp_path / "report"
    assert main(["eval", "--model", "espnet-p2q8-camvid", "--dataset", "camvid", "--data-root",
                 str(data_dir / "camvid"), "--split", "test", "--limit", "4", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["images"] == 4 and report["category_iou"] is None
    assert report["miou_ignored_as_false_positives"] < report["miou"]
    assert 0.45 < report["miou"] < 0.8, report["miou"]
    assert len(report["class_iou"]) == 11 and len(report["confusion_matrix"][0]) == 12
    assert (out / "confusion.png").stat().st_size > 1000
    assert "| class mIoU |" in (out / "eval.md").read_text()
    assert "class mIoU" in capsys.readouterr().out


def test_cross_dataset_cityscapes_model_on_vistas_by_category(tmp_path, city_segmenter):
    make_mapillary(tmp_path / "vistas", "validation", count=2, size=(160, 120))
    dataset = build_dataset("mapillary", tmp_path / "vistas", "validation")
    report = evaluate(city_segmenter, dataset)
    assert list(report.categories) == ["flat", "construction", "object", "nature", "sky", "human",
                                       "vehicle"]
    assert report.category_miou is not None and 0 <= report.category_miou <= 1
    assert report.confusion.matrix.shape == (19, 20)


def test_class_count_mismatch_between_model_and_dataset(tmp_path, capsys):
    make_cityscapes(tmp_path / "cs", "val", FRAMES[:1])
    code = main(["eval", "--model", "espnet-p2q8-camvid", "--dataset", "cityscapes", "--data-root",
                 str(tmp_path / "cs"), "--no-progress"])
    assert code == 2
    assert "class count mismatch: model espnet-p2q8-camvid predicts 11 classes plus void, " \
           "dataset cityscapes has 19" in capsys.readouterr().err


def test_all_ignore_ground_truth_is_reported_clearly(tmp_path, capsys):
    make_cityscapes(tmp_path / "cs", "val", FRAMES[:1], label_values=[0, 1, 4])  # all ignored
    code = main(["eval", "--model", "espnet-p2q3-cityscapes", "--size", "128x64", "--dataset",
                 "cityscapes", "--data-root", str(tmp_path / "cs"), "--no-progress"])
    assert code == 2 and "no labelled pixels" in capsys.readouterr().err
