"""Mapillary Vistas v1.2 (66 classes), natively or mapped to the Cityscapes classes.

Layout of the v1.2 release (the v2.0 release holds the same files under ``SPLIT/v1.2/`` and
names the config ``config_v1.2.json``; both are accepted)::

    ROOT/config.json                         labels: [{name, readable, color, evaluate, ...}]
    ROOT/{training,validation,testing}/images/KEY.jpg
    ROOT/{training,validation}/labels/KEY.png      8-bit palette PNG, value = index in config

Splits may also be given as train / val / test.

``target="cityscapes"`` (default) maps every Vistas class to one of the 19 Cityscapes train
ids or to the ignore label with ``VISTAS_TO_CITYSCAPES`` below, for the ESPNet paper's
cross-dataset test (a Cityscapes model evaluated on Vistas). The 7 Cityscapes categories
follow from it: a Vistas class belongs to the category of the Cityscapes class it maps to,
which is what the official Cityscapes evaluator does for that class. ``target="native"``
keeps the Vistas classes whose ``evaluate`` flag is set.
"""
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, UNKNOWN, Sample, SegmentationDataset, require_dir

SPLITS = {"train": "training", "val": "validation", "test": "testing",
          "training": "training", "validation": "validation", "testing": "testing"}
TARGETS = ("cityscapes", "native")

# Vistas v1.2 class -> Cityscapes class (None = ignore). The rule: a Vistas class maps to the
# Cityscapes class whose annotation guideline covers it; where Cityscapes has a label that its
# benchmark ignores (parking, rail track, guard rail, bridge, tunnel, caravan, trailer, the
# void group) or has no label at all, the Vistas class is ignored, so no pixel is scored
# against a class the model was never asked to predict.
VISTAS_TO_CITYSCAPES = OrderedDict([
    ("animal--bird", None),
    ("animal--ground-animal", None),
    ("construction--barrier--curb", "sidewalk"),      # Cityscapes annotates curbs as sidewalk
    ("construction--barrier--fence", "fence"),
    ("construction--barrier--guard-rail", None),      # Cityscapes "guard rail": ignored
    ("construction--barrier--other-barrier", None),
    ("construction--barrier--wall", "wall"),
    ("construction--flat--bike-lane", "road"),        # lanes delimited by markings are road
    ("construction--flat--crosswalk-plain", "road"),
    ("construction--flat--curb-cut", "sidewalk"),
    ("construction--flat--parking", None),            # Cityscapes "parking": ignored
    ("construction--flat--pedestrian-area", "sidewalk"),
    ("construction--flat--rail-track", None),         # Cityscapes "rail track": ignored
    ("construction--flat--road", "road"),
    ("construction--flat--service-lane", "road"),
    ("construction--flat--sidewalk", "sidewalk"),
    ("construction--structure--bridge", None),        # Cityscapes "bridge": ignored
    ("construction--structure--building", "building"),
    ("construction--structure--tunnel", None),        # Cityscapes "tunnel": ignored
    ("human--person", "person"),
    ("human--rider--bicyclist", "rider"),
    ("human--rider--motorcyclist", "rider"),
    ("human--rider--other-rider", "rider"),
    ("marking--crosswalk-zebra", "road"),             # road includes its markings
    ("marking--general", "road"),
    ("nature--mountain", None),
    ("nature--sand", "terrain"),
    ("nature--sky", "sky"),
    ("nature--snow", None),
    ("nature--terrain", "terrain"),
    ("nature--vegetation", "vegetation"),
    ("nature--water", None),
    ("object--banner", None),
    ("object--bench", None),
    ("object--bike-rack", None),
    ("object--billboard", None),
    ("object--catch-basin", None),
    ("object--cctv-camera", None),
    ("object--fire-hydrant", None),
    ("object--junction-box", None),
    ("object--mailbox", None),
    ("object--manhole", None),
    ("object--phone-booth", None),
    ("object--pothole", None),
    ("object--street-light", "pole"),                 # lamps mounted on poles count as pole
    ("object--support--pole", "pole"),
    ("object--support--traffic-sign-frame", "pole"),  # Cityscapes signs exclude their supports
    ("object--support--utility-pole", "pole"),
    ("object--traffic-light", "traffic light"),
    ("object--traffic-sign--back", None),             # only sign fronts are "traffic sign"
    ("object--traffic-sign--front", "traffic sign"),
    ("object--trash-can", None),
    ("object--vehicle--bicycle", "bicycle"),
    ("object--vehicle--boat", None),
    ("object--vehicle--bus", "bus"),
    ("object--vehicle--car", "car"),
    ("object--vehicle--caravan", None),               # Cityscapes "caravan": ignored
    ("object--vehicle--motorcycle", "motorcycle"),
    ("object--vehicle--on-rails", "train"),
    ("object--vehicle--other-vehicle", None),
    ("object--vehicle--trailer", None),               # Cityscapes "trailer": ignored
    ("object--vehicle--truck", "truck"),
    ("object--vehicle--wheeled-slow", None),
    ("void--car-mount", None),
    ("void--ego-vehicle", None),
    ("void--unlabeled", None),
])


def vistas_to_cityscapes_category():
    """Vistas class -> Cityscapes category (None = ignored), derived from the class mapping."""
    from .cityscapes import official_labels

    category = {lab.name: lab.category for lab in official_labels()}
    return OrderedDict((name, category[target] if target else None)
                       for name, target in VISTAS_TO_CITYSCAPES.items())


def read_config(root: Path):
    for name in ("config.json", "config_v1.2.json"):
        if (root / name).is_file():
            with open(str(root / name)) as f:
                return json.load(f)["labels"]
    raise FileNotFoundError("Mapillary Vistas config.json (or config_v1.2.json) not found in %s" % root)


class MapillaryVistas(SegmentationDataset):
    kind = "mapillary"

    def __init__(self, root, split="validation", target="cityscapes", require_labels=True):
        if split not in SPLITS:
            raise ValueError("Mapillary split must be one of %s, got %r" % (sorted(SPLITS), split))
        if target not in TARGETS:
            raise ValueError("Mapillary target must be one of %s, got %r" % (TARGETS, target))
        root, split = Path(root), SPLITS[split]
        labels = read_config(root)
        if len(labels) > 255:
            raise ValueError("%d Vistas labels do not fit 8-bit label files" % len(labels))
        self.vistas_labels = tuple(lab["name"] for lab in labels)
        image_dir = require_dir(root / split / "images", "Mapillary %s/images" % split)
        label_dir = root / split / "labels"
        if not label_dir.is_dir():
            label_dir = root / split / "v1.2" / "labels"
        samples = []
        for image in sorted(image_dir.glob("*.jpg")):
            label = label_dir / (image.stem + ".png")
            if not label.is_file():
                if require_labels:
                    raise FileNotFoundError("no ground truth for %s: expected %s" % (image, label))
                label = None
            samples.append(Sample(image, label, image.stem))
        if not samples:
            raise FileNotFoundError("no .jpg images in %s" % image_dir)
        if target == "cityscapes":
            classes, palette, lut, groups = _cityscapes_target(labels)
        else:
            classes, palette, lut, groups = _native_target(labels)
        super().__init__(root, split, samples, classes, palette, lut, categories=groups)
        self.target = target


def _cityscapes_target(labels):
    from .cityscapes import categories, train_classes

    names, colours = train_classes()
    unknown = [lab["name"] for lab in labels if lab["name"] not in VISTAS_TO_CITYSCAPES]
    if unknown:
        raise ValueError("Vistas labels %s have no Cityscapes mapping (is this the v1.2 config?)"
                         % unknown[:5])
    lut = np.full(256, UNKNOWN, np.int16)
    for value, lab in enumerate(labels):
        target = VISTAS_TO_CITYSCAPES[lab["name"]]
        lut[value] = names.index(target) if target else IGNORE_INDEX
    return names, colours, lut, categories()


def _native_target(labels):
    lut = np.full(256, UNKNOWN, np.int16)
    classes, palette = [], []
    for value, lab in enumerate(labels):
        if lab.get("evaluate", True):
            lut[value] = len(classes)
            classes.append(lab["name"])
            palette.append(tuple(lab["color"]))
        else:
            lut[value] = IGNORE_INDEX
    return classes, palette, lut, None
