"""mIoU of label images against a bag's ground truth, shared by replay and offline eval.

Both feed the same ConfusionMatrix (espnet_ros.metrics) with the same label arrays,
so a replay with no dropped frame scores exactly what the offline eval scores.
"""
import math

import numpy as np

from ..metrics import ConfusionMatrix
from .io import IGNORE, BagError


def evaluated_classes(entry):
    """The classes scored for a zoo model: all but a trailing void output (CamVid 11, Cityscapes 19)."""
    classes = list(entry.classes)
    if entry.void_id is not None and entry.void_id == len(classes) - 1:
        classes = classes[:-1]
    return classes


class Scorer:
    """Accumulates (prediction, ground truth) pairs; ground-truth void of the model is not scored."""

    def __init__(self, entry):
        self.entry = entry
        self.classes = evaluated_classes(entry)
        self.matrix = ConfusionMatrix(len(self.classes), entry.num_classes, IGNORE, self.classes)
        self.frames = 0

    def add(self, pred, gt, where=""):
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise BagError("label/image size mismatch%s: ground truth %dx%d, image %dx%d"
                           % (" at " + where if where else "", gt.shape[1], gt.shape[0],
                              pred.shape[1], pred.shape[0]))
        if self.entry.void_id is not None and self.entry.void_id >= len(self.classes):
            gt = np.where(gt == self.entry.void_id, IGNORE, gt)
        try:
            self.matrix.update(pred, gt)
        except ValueError as exc:
            raise BagError("cannot score %s against the ground truth%s: %s"
                           % (self.entry.name, " at " + where if where else "", exc)) from exc
        self.frames += 1

    def summary(self):
        """mIoU, pixel accuracy and per-class IoU (None for classes absent from truth and prediction)."""
        if self.matrix.labelled_pixels == 0:
            return {"frames": self.frames, "miou": None, "pixel_accuracy": None, "per_class_iou": {}}
        scores = self.matrix.compute()
        return {"frames": self.frames, "miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy,
                "labelled_pixels": scores.labelled_pixels,
                "per_class_iou": {name: (None if math.isnan(v) else float(v))
                                  for name, v in zip(self.classes, scores.iou)}}
