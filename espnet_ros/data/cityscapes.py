"""Cityscapes (fine annotations), labelIds converted to the 19 train ids with the official table.

Layout, as downloaded from cityscapes-dataset.com::

    ROOT/leftImg8bit/{train,val,test}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png

The label table (ids, train ids, categories, colours) comes from the ``cityscapesscripts``
package, the one the official evaluator uses; nothing here restates it. Categories are the 7
evaluated ones (flat, construction, object, nature, sky, human, vehicle).
"""
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, UNKNOWN, Sample, SegmentationDataset, require_dir

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def official_labels():
    try:
        from cityscapesscripts.helpers import labels
    except ImportError as exc:
        raise ImportError("Cityscapes support needs the cityscapesscripts package "
                          "(pip install cityscapesscripts)") from exc
    return labels.labels


def train_classes():
    """(names, RGB colours) of train ids 0..18, from the official table."""
    table = sorted((lab for lab in official_labels() if 0 <= lab.trainId < 255),
                   key=lambda lab: lab.trainId)
    return tuple(lab.name for lab in table), tuple(lab.color for lab in table)


def labelid_to_trainid_lut():
    """256-entry table: official label id -> train id (255 for ignored ids, -1 for unknown)."""
    lut = np.full(256, UNKNOWN, np.int16)
    for lab in official_labels():
        if lab.id >= 0:
            lut[lab.id] = lab.trainId if 0 <= lab.trainId < 255 else IGNORE_INDEX
    return lut


def trainid_to_labelid():
    """Train id -> official label id, for prediction files the official evaluator reads."""
    table = {lab.trainId: lab.id for lab in official_labels() if 0 <= lab.trainId < 255}
    return tuple(table[i] for i in range(len(table)))


def categories():
    """Category name -> train ids, in the official category order, evaluated categories only."""
    groups = OrderedDict()
    for lab in sorted(official_labels(), key=lambda lab: (lab.categoryId, lab.id)):
        if 0 <= lab.trainId < 255:
            groups.setdefault(lab.category, []).append(lab.trainId)
    return OrderedDict((name, tuple(ids)) for name, ids in groups.items())


class Cityscapes(SegmentationDataset):
    kind = "cityscapes"

    def __init__(self, root, split="train", require_labels=True):
        if split not in SPLITS:
            raise ValueError("Cityscapes split must be one of %s, got %r" % (SPLITS, split))
        root = Path(root)
        image_dir = require_dir(root / "leftImg8bit" / split, "Cityscapes leftImg8bit/" + split)
        label_dir = root / "gtFine" / split
        samples = []
        for image in sorted(image_dir.glob("*/*" + IMAGE_SUFFIX)):
            name = image.name[:-len(IMAGE_SUFFIX)]
            label = label_dir / image.parent.name / (name + LABEL_SUFFIX)
            if not label.is_file():
                if require_labels:
                    raise FileNotFoundError("no ground truth for %s: expected %s" % (image, label))
                label = None
            samples.append(Sample(image, label, name))
        if not samples:
            raise FileNotFoundError("no *%s files under %s" % (IMAGE_SUFFIX, image_dir))
        names, colours = train_classes()
        super().__init__(root, split, samples, names, colours, labelid_to_trainid_lut(),
                         categories=categories())

    def city(self, index) -> str:
        return self.samples[index].image.parent.name
