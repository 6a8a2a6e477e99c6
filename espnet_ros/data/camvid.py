"""CamVid as distributed with the SegNet tutorial (the split the ESPNet paper uses).

Layout (480x360 frames, labels 0..10 and 11 = void)::

    ROOT/{train,val,test}/NAME.png
    ROOT/{train,val,test}annot/NAME.png
    ROOT/{train,val,test}.txt      optional; fixes the order ("/any/prefix/train/NAME.png ...")

Void (11) becomes the ignore label; train with ``void_as_class`` to learn it as the original
ESPNet CamVid model did.
"""
from pathlib import Path

from ..models.classes import CAMVID_CLASSES, CAMVID_PALETTE
from .base import Sample, SegmentationDataset, identity_lut, require_dir

SPLITS = ("train", "val", "test")
CLASSES = CAMVID_CLASSES[:11]
VOID = 11


class CamVid(SegmentationDataset):
    kind = "camvid"

    def __init__(self, root, split="train"):
        if split not in SPLITS:
            raise ValueError("CamVid split must be one of %s, got %r" % (SPLITS, split))
        root = Path(root)
        images = require_dir(root / split, "CamVid images")
        labels = require_dir(root / (split + "annot"), "CamVid labels")
        samples = [Sample(images / name, labels / name, Path(name).stem)
                   for name in _ordered_names(root, split, images)]
        missing = [s.label for s in samples if not s.label.is_file()]
        if missing:
            raise FileNotFoundError("%d CamVid labels missing, e.g. %s" % (len(missing), missing[0]))
        super().__init__(root, split, samples, CLASSES, CAMVID_PALETTE,
                         identity_lut(len(CLASSES), ignore_values=(VOID, 255)))


def _ordered_names(root, split, images):
    listing = root / (split + ".txt")
    if listing.is_file():
        return [Path(line.split()[0]).name for line in listing.read_text().splitlines() if line.strip()]
    return sorted(p.name for p in images.glob("*.png"))
