"""The confusion-matrix metrics, their edge cases, and the training loss."""
import math

import numpy as np
import pytest
import torch

from espnet_ros.metrics import ConfusionMatrix, mean_of_groups
from espnet_ros.training.losses import SegmentationLoss, class_weights


def brute_force_iou(preds, gts, classes, ignore=255):
    """IoU per class by counting pixel sets over the whole set, the definition itself."""
    pred = np.concatenate([p.ravel() for p in preds])
    gt = np.concatenate([g.ravel() for g in gts])
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    out = []
    for c in range(classes):
        inter = np.sum((pred == c) & (gt == c))
        union = np.sum((pred == c) | (gt == c))
        out.append(inter / union if union else float("nan"))
    return np.array(out)


def test_small_example_by_hand():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    s = cm.compute()
    # class 0: tp 1, fp 1 (gt 2 -> 0), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: 1/2
    assert np.allclose(s.iou, [1 / 3, 2 / 3, 1 / 2])
    assert math.isclose(s.miou, (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(s.pixel_accuracy, 4 / 6) and s.labelled_pixels == 6
    assert np.allclose(s.class_accuracy, [1 / 2, 1, 1 / 2])


def test_matches_the_definition_on_random_sets():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 5, (20, 30)) for _ in range(4)]
    gts = [np.where(rng.random((20, 30)) < 0.1, 255, rng.integers(0, 5, (20, 30))) for _ in range(4)]
    cm = ConfusionMatrix(5)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    assert np.allclose(cm.compute().iou, brute_force_iou(preds, gts, 5), atol=1e-12)


def test_whole_set_iou_is_not_an_average_of_per_image_ious():
    # image 1: large, mostly right; image 2: tiny, all wrong for class 1
    gt1, pred1 = np.zeros((10, 10), int), np.zeros((10, 10), int)
    gt1[:, :5], pred1[:, :5] = 1, 1
    gt2, pred2 = np.array([[1]]), np.array([[0]])
    cm = ConfusionMatrix(2)
    cm.update(pred1, gt1)
    cm.update(pred2, gt2)
    per_image = np.mean([1.0, 0.0])  # class-1 IoU averaged over the two images
    assert math.isclose(cm.compute().iou[1], 50 / 51)
    assert not math.isclose(cm.compute().iou[1], per_image)


def test_empty_classes():
    cm = ConfusionMatrix(4)
    cm.update(np.array([0, 0, 1, 3]), np.array([0, 0, 1, 1]))
    s = cm.compute()
    assert math.isnan(s.iou[2])           # neither in truth nor predicted: not scored
    assert s.iou[3] == 0.0                # predicted but absent: a real 0
    assert math.isclose(s.miou, (1 + 0.5 + 0) / 3)
    assert math.isnan(s.class_accuracy[3])


def test_all_ignore_images_add_nothing_and_an_all_ignore_set_is_an_error():
    cm = ConfusionMatrix(3)
    cm.update(np.array([[1, 2]]), np.array([[255, 255]]))
    assert cm.labelled_pixels == 0
    with pytest.raises(ValueError, match="no labelled pixels"):
        cm.compute()
    cm.update(np.array([1]), np.array([1]))
    assert cm.compute().miou == 1.0


def test_class_count_mismatch_is_a_clear_error():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"ground truth holds values \[5\].*class count mismatch"):
        cm.update(np.array([0, 1]), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"prediction holds values \[3\]"):
        cm.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integers"):
        cm.update(np.zeros(2), np.zeros(2, int))
    with pytest.raises(ValueError, match="ignore_index"):
        ConfusionMatrix(3, ignore_index=2)
    assert cm.labelled_pixels == 0  # a rejected update leaves the matrix untouched


def test_extra_predicted_value_is_a_miss_not_a_false_positive():
    # a 20-output model (void = 19) scored on 19 classes
    cm = ConfusionMatrix(19, num_pred_classes=20)
    cm.update(np.array([19, 19, 0, 0]), np.array([0, 1, 0, 255]))
    s = cm.compute()
    assert s.iou[0] == 0.5 and s.iou[1] == 0.0 and math.isnan(s.iou[2])
    assert cm.matrix.shape == (19, 20)


def test_torch_tensors_and_merge():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(torch.tensor([[0, 1]]), torch.tensor([[0, 2]], dtype=torch.uint8))
    b.update(np.array([2]), np.array([2]))
    a.merge(b)
    assert a.labelled_pixels == 3 and a.matrix[2, 1] == 1 and a.matrix[2, 2] == 1
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(4))
    a.reset()
    assert a.labelled_pixels == 0


def test_group_iou_treats_a_group_as_one_class():
    cm = ConfusionMatrix(4, num_pred_classes=5)
    gt = np.array([0, 0, 1, 2, 3, 3])
    pred = np.array([1, 0, 0, 2, 2, 4])  # 0 and 1 confused within their group; 4 is "void"
    cm.update(pred, gt)
    groups = cm.group_iou({"flat": [0, 1], "rest": [2, 3]})
    assert groups["flat"] == 1.0
    assert math.isclose(groups["rest"], 2 / 3)  # tp 2 (2->2, 3->2), fn 1 (3->void)
    assert math.isclose(mean_of_groups(groups), (1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="outside"):
        cm.group_iou({"bad": [7]})


def test_class_weights_follow_one_over_log():
    w = class_weights([80, 20, 0], 1.10)
    assert torch.allclose(w, torch.tensor([1 / math.log(1.9), 1 / math.log(1.3), 1 / math.log(1.1)]))
    assert math.isclose(float(class_weights([1, 0], 1.02)[1]), 1 / math.log(1.02), rel_tol=1e-6)
    with pytest.raises(ValueError):
        class_weights([1, 1], 1.0)
    with pytest.raises(ValueError, match="no labelled"):
        class_weights([0, 0], 1.1)


def test_loss_ignores_255_and_survives_an_all_ignore_batch():
    loss = SegmentationLoss(torch.ones(3))
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.full((2, 4, 5), 255, dtype=torch.long)
    value = loss(logits, target)
    value.backward()
    assert float(value.detach()) == 0.0 and torch.isfinite(logits.grad).all()
    target[0, 0, 0] = 1
    assert math.isclose(float(loss(logits, target).detach()),
                        float(-torch.log_softmax(logits.detach(), 1)[0, 1, 0, 0]), rel_tol=1e-5)
    with pytest.raises(ValueError, match="differ in size"):
        loss(logits, target[:, :2])


def test_predictions_on_ignored_pixels_as_false_positives_on_request():
    """The SegNet / ESPNet CamVid convention: the void row counts in the false positives."""
    cm = ConfusionMatrix(2, num_pred_classes=3)
    cm.update(np.array([0, 1, 0, 2]), np.array([0, 1, 255, 255]))
    assert cm.compute().miou == 1.0
    scores = cm.compute(ignored_as_false_positives=True)
    assert scores.iou[0] == 0.5 and scores.iou[1] == 1.0
    assert list(cm.ignored_predictions) == [1, 0, 1]
