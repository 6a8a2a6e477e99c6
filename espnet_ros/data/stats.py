"""Training-split statistics: input normalization and class frequencies, in one pass.

Mean and std follow the original ESPNet loader (and so the published CamVid entry): the mean
over images of each image's per-channel mean (and std), BGR, 0..255.
"""
from typing import NamedTuple, Optional

import numpy as np

from .base import IGNORE_INDEX


class SplitStatistics(NamedTuple):
    mean_bgr: tuple
    std_bgr: tuple
    histogram: tuple      # labelled pixels per class (void last where counted as a class)
    images: int


def split_statistics(dataset, void_id: Optional[int] = None, progress=None) -> SplitStatistics:
    """``void_id``: count ignored pixels as this extra class (void trained as a class)."""
    bins = dataset.num_classes + (1 if void_id is not None else 0)
    mean = np.zeros(3, np.float64)
    std = np.zeros(3, np.float64)
    histogram = np.zeros(bins, np.int64)
    indices = range(len(dataset))
    for i in (progress(indices) if progress else indices):
        image, label = dataset[i]
        pixels = image.reshape(-1, 3).astype(np.float64)
        mean += pixels.mean(0)
        std += pixels.std(0)
        if void_id is not None:
            label = np.where(label == IGNORE_INDEX, void_id, label)
        label = label[label != IGNORE_INDEX]
        histogram += np.bincount(label.ravel(), minlength=bins)[:bins]
    n = max(len(dataset), 1)
    return SplitStatistics(tuple((mean / n).tolist()), tuple((std / n).tolist()),
                           tuple(histogram.tolist()), len(dataset))
