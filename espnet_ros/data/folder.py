"""A dataset of your own: a folder of images, a folder of label PNGs and a classes file.

Layout::

    ROOT/classes.yaml
    ROOT/images/{train,val,test}/NAME.{png,jpg,jpeg}
    ROOT/labels/{train,val,test}/NAME.png        8-bit, value = class index

``classes.yaml``::

    classes: [background, path, obstacle]   # any number >= 1; value i is classes[i]
    palette: [[0, 0, 0], [0, 255, 0], [255, 0, 0]]   # optional, RGB
    ignore_index: 255                       # optional; pixels with it are not scored

A split without a labels folder can still be segmented and exported, not evaluated.
"""
from pathlib import Path

import yaml

from ..models.classes import generic_palette
from .base import IGNORE_INDEX, Sample, SegmentationDataset, identity_lut, require_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_classes(path: Path):
    with open(str(path)) as f:
        spec = yaml.safe_load(f) or {}
    classes = spec.get("classes")
    if not classes or not isinstance(classes, list):
        raise ValueError("%s needs a non-empty 'classes' list" % path)
    palette = spec.get("palette") or generic_palette(len(classes))
    if len(palette) < len(classes) or any(len(c) != 3 for c in palette):
        raise ValueError("%s: 'palette' needs one RGB triple per class" % path)
    ignore = int(spec.get("ignore_index", IGNORE_INDEX))
    if ignore < len(classes) or ignore > 255:
        raise ValueError("%s: ignore_index %d must lie in %d..255" % (path, ignore, len(classes)))
    return [str(c) for c in classes], [tuple(c) for c in palette], ignore


class FolderDataset(SegmentationDataset):
    kind = "folder"

    def __init__(self, root, split="train", require_labels=True):
        root = Path(root)
        classes, palette, ignore = read_classes(root / "classes.yaml")
        image_dir = require_dir(root / "images" / split, "images/" + split)
        label_dir = root / "labels" / split
        samples = []
        for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = label_dir / (image.stem + ".png")
            if not label.is_file():
                if require_labels:
                    raise FileNotFoundError("no label for %s: expected %s" % (image, label))
                label = None
            samples.append(Sample(image, label, image.stem))
        if not samples:
            raise FileNotFoundError("no images (%s) in %s" % ("/".join(IMAGE_SUFFIXES), image_dir))
        super().__init__(root, split, samples, classes, palette,
                         identity_lut(len(classes), ignore_values=(ignore,)))
