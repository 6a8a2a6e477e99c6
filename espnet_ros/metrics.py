"""Segmentation metrics from one confusion matrix accumulated over a whole set.

IoU per class = TP / (TP + FP + FN) over every pixel of the set, not an average of per-batch
IoUs (the original ESPNet code averages per batch, which weights small batches and rare
classes wrongly). Pixels whose ground truth is the ignore label never enter the matrix.

The matrix has one row per evaluated class and one column per value the model can predict.
A model may predict more values than there are evaluated classes (for example the published
Cityscapes models' class 19, "void"): such a prediction on a labelled pixel is a miss for
that pixel's class and a false positive for nobody, as in the official Cityscapes evaluator.

The predictions made on ignored pixels are kept aside (``ignored_predictions``): the CamVid
figures of the SegNet and ESPNet papers count them as false positives (a 12x12 matrix with
the void row, averaged over the 11 classes); ``compute(ignored_as_false_positives=True)``
gives that convention, the default is the standard one where ignored pixels do not count.

``pixel_agreement`` / ``label_agreement`` compare two paths' labels (benchmarks, the gate).
``scored_classes(entry, dataset)`` checks that a zoo model predicts a dataset's classes and
returns the matrix to score it with.

Used by training's validation and ``espnet-ros eval``, bag scoring and the accuracy gate of
reduced-precision models; it imports nothing of the project. Typical use::

    cm = ConfusionMatrix(num_classes=19, num_pred_classes=20, ignore_index=255)
    for pred, gt in pairs:           # HxW integer arrays (numpy or torch), same shape
        cm.update(pred, gt)
    scores = cm.compute()            # IoUScores: per-class IoU, mIoU, accuracies
"""
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np

IGNORE_INDEX = 255


class IoUScores(NamedTuple):
    iou: np.ndarray          # per class; NaN where the class is absent from truth and prediction
    miou: float              # mean over the classes whose IoU is not NaN
    pixel_accuracy: float    # correct / labelled pixels
    class_accuracy: np.ndarray  # per class recall TP / (TP + FN); NaN without ground truth
    mean_class_accuracy: float
    labelled_pixels: int


class ConfusionMatrix:
    """Counts (ground-truth class, predicted value) pairs; see the module docstring.

    ``num_classes``: evaluated classes, ground-truth values 0..num_classes-1.
    ``num_pred_classes``: values the predictions may take (default ``num_classes``); values
    from ``num_classes`` up count as misses.
    ``ignore_index``: ground-truth value excluded from every count.
    """

    def __init__(self, num_classes: int, num_pred_classes: Optional[int] = None,
                 ignore_index: int = IGNORE_INDEX, class_names: Optional[Sequence[str]] = None):
        num_pred_classes = num_classes if num_pred_classes is None else num_pred_classes
        if num_classes < 1 or num_pred_classes < num_classes:
            raise ValueError("need num_classes >= 1 and num_pred_classes >= num_classes, got %d, %d"
                             % (num_classes, num_pred_classes))
        if 0 <= ignore_index < num_classes:
            raise ValueError("ignore_index %d is one of the %d classes" % (ignore_index, num_classes))
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError("%d class names for %d classes" % (len(class_names), num_classes))
        self.num_classes = num_classes
        self.num_pred_classes = num_pred_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else None
        self.matrix = np.zeros((num_classes, num_pred_classes), np.int64)
        self.ignored_predictions = np.zeros(num_pred_classes, np.int64)

    def reset(self):
        self.matrix[:] = 0
        self.ignored_predictions[:] = 0

    def update(self, pred, gt):
        """Adds one prediction / ground-truth pair (any shape, equal shapes, integer values)."""
        pred, gt = _as_int_array(pred), _as_int_array(gt)
        if pred.shape != gt.shape:
            raise ValueError("prediction shape %s differs from ground truth shape %s"
                             % (pred.shape, gt.shape))
        if pred.size:
            _check_range(pred, self.num_pred_classes, "prediction", "predictable values")
        valid = gt != self.ignore_index
        on_ignored = pred[~valid]
        gt, pred = gt[valid], pred[valid]
        if gt.size:  # an all-ignore image adds nothing to the matrix
            _check_range(gt, self.num_classes, "ground truth", "classes (and ignore %d)"
                         % self.ignore_index)
            counts = np.bincount(gt * self.num_pred_classes + pred,
                                 minlength=self.num_classes * self.num_pred_classes)
            self.matrix += counts.reshape(self.matrix.shape)
        if on_ignored.size:
            self.ignored_predictions += np.bincount(on_ignored, minlength=self.num_pred_classes)

    def merge(self, other):
        if other.matrix.shape != self.matrix.shape or other.ignore_index != self.ignore_index:
            raise ValueError("cannot merge confusion matrices of different shape or ignore label")
        self.matrix += other.matrix
        self.ignored_predictions += other.ignored_predictions
        return self

    @property
    def labelled_pixels(self) -> int:
        return int(self.matrix.sum())

    def compute(self, ignored_as_false_positives=False) -> IoUScores:
        """Scores of everything accumulated so far; raises if no labelled pixel was seen.

        ``ignored_as_false_positives``: also count predictions on ignored pixels as false
        positives (the SegNet / ESPNet CamVid convention; see the module docstring).
        """
        if self.labelled_pixels == 0:
            raise ValueError("no labelled pixels were accumulated (empty set, or every pixel is "
                             "the ignore label %d)" % self.ignore_index)
        m = self.matrix.astype(np.float64)
        tp = np.diag(m[:, :self.num_classes])
        truth = m.sum(1)                         # TP + FN, misses into extra values included
        predicted = m[:, :self.num_classes].sum(0)  # TP + FP, over labelled pixels only
        if ignored_as_false_positives:
            predicted = predicted + self.ignored_predictions[:self.num_classes]
        iou = _divide(tp, truth + predicted - tp)
        accuracy = _divide(tp, truth)
        return IoUScores(iou=iou, miou=_nanmean(iou), pixel_accuracy=float(tp.sum() / m.sum()),
                         class_accuracy=accuracy, mean_class_accuracy=_nanmean(accuracy),
                         labelled_pixels=self.labelled_pixels)

    def group_iou(self, groups: Dict[str, Sequence[int]]) -> Dict[str, float]:
        """IoU of groups of classes (Cityscapes categories) treated as single classes.

        As the official evaluator: TP counts pixels whose truth and prediction fall in the same
        group; a prediction outside the evaluated classes is a miss. Classes in no group still
        count as false positives of the group they are mistaken for.
        """
        m = self.matrix.astype(np.float64)
        scores = {}
        for name, members in groups.items():
            members = np.asarray(sorted(set(members)), np.int64)
            if members.size == 0 or members.min() < 0 or members.max() >= self.num_classes:
                raise ValueError("group %r has classes outside 0..%d" % (name, self.num_classes - 1))
            tp = m[np.ix_(members, members)].sum()
            fn = m[members].sum() - tp
            others = np.setdiff1d(np.arange(self.num_classes), members)
            fp = m[np.ix_(others, members)].sum()
            denom = tp + fp + fn
            scores[name] = float(tp / denom) if denom > 0 else float("nan")
        return scores

    def normalized(self) -> np.ndarray:
        """Rows normalized to sum to one (recall view); rows without ground truth are zero."""
        rows = self.matrix.sum(1, keepdims=True)
        return np.divide(self.matrix, rows, out=np.zeros(self.matrix.shape), where=rows > 0)


def scored_classes(entry, dataset):
    """Checks that zoo model ``entry`` predicts ``dataset``'s classes; returns (an empty
    ConfusionMatrix to score it with, warnings).

    The model may have one more output than the dataset has classes when that output is its
    void class (the published checkpoints): predicting it on a labelled pixel is a miss.
    """
    own = [i for i in range(entry.num_classes) if i != entry.void_id]
    if len(own) != dataset.num_classes or (entry.void_id is not None
                                           and entry.void_id < dataset.num_classes):
        raise ValueError("class count mismatch: model %s predicts %d classes%s, dataset %s has %d"
                         % (entry.name, len(own), " plus void" if entry.void_id is not None else "",
                            dataset.kind, dataset.num_classes))
    warnings = []
    names = tuple(entry.classes[i] for i in own)
    if names != tuple(dataset.classes):
        warnings.append("class names differ (model %s, dataset %s); scoring by index"
                        % (", ".join(names), ", ".join(dataset.classes)))
    confusion = ConfusionMatrix(dataset.num_classes, num_pred_classes=entry.num_classes,
                                ignore_index=dataset.ignore_index, class_names=dataset.classes)
    return confusion, tuple(warnings)


def pixel_agreement(expected, got) -> float:
    """The fraction of pixels where two label arrays of the same shape agree."""
    return float((np.asarray(expected) == np.asarray(got)).mean())


def label_agreement(references, candidates):
    """(smallest, mean) pixel agreement over pairs of label arrays (e.g. one per frame): how
    far a faster path reproduces a reference's labels."""
    rates = [pixel_agreement(a, b) for a, b in zip(references, candidates)]
    return min(rates), sum(rates) / len(rates)


def mean_of_groups(scores: Dict[str, float]) -> float:
    return _nanmean(np.asarray(list(scores.values()), np.float64))


def _as_int_array(x):
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError("labels must be integers, got dtype %s" % x.dtype)
    return x.astype(np.int64, copy=False).ravel()


def _check_range(values, limit, what, meaning):
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= limit:
        bad = np.unique(values[(values < 0) | (values >= limit)])[:10]
        raise ValueError("%s holds values %s outside 0..%d (%d %s): class count mismatch between "
                         "model and dataset?" % (what, bad.tolist(), limit - 1, limit, meaning))


def _divide(a, b):
    return np.divide(a, b, out=np.full(a.shape, np.nan), where=b > 0)


def _nanmean(values):
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
