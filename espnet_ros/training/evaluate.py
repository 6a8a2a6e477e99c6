"""Evaluation of a model on a dataset split, through the same inference core as the node.

Each frame goes through ``Segmenter.segment`` (the node's preprocessing, the model, the
argmax, nearest-neighbour upsampling to the frame's size), and the labels are scored at the
ground truth's native resolution in one confusion matrix over the whole split.
"""
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import cv2
import numpy as np

from ..data.base import read_label_png
from ..metrics import ConfusionMatrix, IoUScores, mean_of_groups, scored_classes
from .distributed import all_reduce_confusion, shard


class EvalReport(NamedTuple):
    model: str
    dataset: str
    split: str
    images: int
    classes: tuple
    scores: IoUScores
    categories: Optional[Dict[str, float]]   # category IoU, where the dataset defines them
    confusion: ConfusionMatrix
    seconds: float
    input_size: Optional[tuple]
    warnings: tuple = ()
    # Predictions on ignored pixels also counted as false positives: the convention of the
    # SegNet / ESPNet CamVid tables (CamVid void pixels), for comparison with them.
    scores_ignored_as_fp: Optional[IoUScores] = None
    columns: tuple = ()    # names of the confusion matrix's columns (predicted values)

    @property
    def miou(self) -> float:
        return self.scores.miou

    @property
    def category_miou(self) -> Optional[float]:
        return mean_of_groups(self.categories) if self.categories else None


def evaluate(segmenter, dataset, progress: bool = False,
             on_prediction: Optional[Callable[[int, np.ndarray], None]] = None,
             world=None) -> EvalReport:
    """Scores ``segmenter`` (an ``espnet_ros.inference.Segmenter``) on every sample of ``dataset``.

    ``on_prediction(index, labels)`` sees each prediction (at the frame's resolution), for
    exports. ``world`` (``training.distributed.World``): each process scores its share of the
    frames and the confusion matrices are summed, so every process returns the whole split's
    report.
    """
    confusion, warnings = scored_classes(segmenter.entry, dataset)
    start = time.perf_counter()
    indices = shard(len(dataset), world) if world is not None else range(len(dataset))
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="evaluating", unit="img", dynamic_ncols=True)
    for i in indices:
        image, truth = dataset.read_image(i), dataset.read_label(i)
        pred = segmenter.segment(image, "bgr")
        if pred.shape != truth.shape:  # labels stored at another size than the frames
            pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
        confusion.update(pred, truth)
        if on_prediction is not None:
            on_prediction(i, pred)
    if world is not None:
        all_reduce_confusion(confusion, world)
    entry = segmenter.entry
    columns = tuple(dataset.classes) + tuple(entry.classes[dataset.num_classes:])
    return _report(entry.name, dataset, confusion, time.perf_counter() - start,
                   segmenter.input_size, warnings, columns)


def evaluate_label_files(pred_files: List, truth_files: List, dataset) -> EvalReport:
    """Scores prediction files against ground-truth files, both in the dataset's label values
    (for Cityscapes: labelIds PNGs, as the official evaluator reads them)."""
    if len(pred_files) != len(truth_files):
        raise ValueError("%d predictions for %d ground-truth files" % (len(pred_files), len(truth_files)))
    confusion = ConfusionMatrix(dataset.num_classes, num_pred_classes=dataset.num_classes + 1,
                                ignore_index=dataset.ignore_index, class_names=dataset.classes)
    start = time.perf_counter()
    for pred_file, truth_file in zip(pred_files, truth_files):
        truth = dataset.decode_label(read_label_png(truth_file), truth_file)
        pred = dataset.decode_label(read_label_png(pred_file), pred_file)
        # A prediction of a value the benchmark ignores is a miss: give it the extra column.
        pred = np.where(pred == dataset.ignore_index, dataset.num_classes, pred)
        confusion.update(pred, truth)
    return _report("files", dataset, confusion, time.perf_counter() - start, None, (),
                   tuple(dataset.classes) + ("ignored label",))


def _report(model, dataset, confusion, seconds, input_size, warnings, columns):
    scores = confusion.compute()
    categories = confusion.group_iou(dataset.categories) if dataset.categories else None
    return EvalReport(model=model, dataset=dataset.kind, split=dataset.split, images=len(dataset),
                      classes=tuple(dataset.classes), scores=scores, categories=categories,
                      confusion=confusion, seconds=seconds,
                      input_size=tuple(input_size) if input_size else None, warnings=warnings,
                      scores_ignored_as_fp=confusion.compute(ignored_as_false_positives=True),
                      columns=columns)
