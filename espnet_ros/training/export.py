"""Cityscapes benchmark submission: one labelIds PNG per frame, 2048x1024, official names.

Files are ``OUT/CITY/CITY_SEQ_FRAME_leftImg8bit.png`` (the frame's own name), holding official
label ids (train ids mapped through the model entry's ``label_ids``; void becomes 0,
"unlabeled"). The official evaluator and server match predictions by the
``CITY_SEQ_FRAME`` prefix.
"""
from pathlib import Path

import cv2
import numpy as np

from ..inference import map_ids

CITYSCAPES_SIZE = (2048, 1024)  # width, height


class CityscapesExporter:
    """Callable (index, train-id labels) that writes the submission file of sample ``index``."""

    def __init__(self, entry, dataset, out_dir):
        if entry.label_ids is None:
            raise ValueError("model %s has no train-id -> Cityscapes label-id mapping" % entry.name)
        if dataset.kind != "cityscapes":
            raise ValueError("the Cityscapes export needs the cityscapes dataset, got %s" % dataset.kind)
        self.label_ids = entry.label_ids
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.written = []

    def path(self, index) -> Path:
        sample = self.dataset.samples[index]
        return self.out_dir / self.dataset.city(index) / (sample.name + "_leftImg8bit.png")

    def __call__(self, index, labels: np.ndarray):
        if labels.shape != (CITYSCAPES_SIZE[1], CITYSCAPES_SIZE[0]):
            labels = cv2.resize(labels, CITYSCAPES_SIZE, interpolation=cv2.INTER_NEAREST)
        path = self.path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), map_ids(labels, self.label_ids)):
            raise OSError("cannot write %s" % path)
        self.written.append(path)


def export_cityscapes(segmenter, dataset, out_dir, progress=False):
    """Segments every frame of ``dataset`` and writes the submission files; returns their paths."""
    exporter = CityscapesExporter(segmenter.entry, dataset, out_dir)
    indices = range(len(dataset))
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="exporting", unit="img", dynamic_ncols=True)
    for i in indices:
        exporter(i, segmenter.segment(dataset.read_image(i), "bgr"))
    return exporter.written
