"""The dataset interface every reader implements: file pairs plus class metadata.

A dataset is a list of samples (image file, label file, name). ``read_image`` returns the
image as OpenCV reads it (BGR uint8, HxWx3) and ``read_label`` the label map at its native
resolution in *train ids*: 0..len(classes)-1 for the evaluated classes and ``ignore_index``
(255) for everything else (void, unlabeled, classes outside the benchmark). ``ds[i]`` is the
pair (image, label). Readers decode their dataset's label values through a 256-entry lookup
table; a value the table does not know raises an error naming the file.
"""
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

IGNORE_INDEX = 255
UNKNOWN = -1  # lookup-table entry for label values the dataset does not define


class Sample(NamedTuple):
    image: Path
    label: Optional[Path]   # None where the split has no ground truth (test sets)
    name: str               # unique within the split; used for output file names


class SegmentationDataset:
    """A split of a segmentation dataset. Subclasses fill samples, classes and the lookup table."""

    kind = "generic"

    def __init__(self, root, split: str, samples: Sequence[Sample], classes: Sequence[str],
                 palette: Sequence[Tuple[int, int, int]], label_lut: np.ndarray,
                 categories: Optional[Dict[str, Tuple[int, ...]]] = None,
                 ignore_index: int = IGNORE_INDEX):
        if len(palette) < len(classes):
            raise ValueError("%d palette colours for %d classes" % (len(palette), len(classes)))
        if not 0 < len(classes) <= 254:
            raise ValueError("need 1..254 classes, got %d" % len(classes))
        self.root = Path(root)
        self.split = split
        self.samples: List[Sample] = list(samples)
        self.classes = tuple(classes)
        self.palette = tuple(tuple(int(v) for v in c) for c in palette[:len(classes)])
        self.label_lut = np.asarray(label_lut, np.int16)
        self.categories = categories  # name -> train ids, for category-level IoU
        self.ignore_index = ignore_index

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_labels(self) -> bool:
        return all(s.label is not None for s in self.samples)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.read_image(index), self.read_label(index)

    def read_image(self, index) -> np.ndarray:
        path = self.samples[index].image
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError("cannot read image %s" % path)
        return image

    def read_label(self, index) -> np.ndarray:
        path = self.samples[index].label
        if path is None:
            raise OSError("%s %s has no ground truth for %s" % (self.kind, self.split,
                                                                 self.samples[index].name))
        return self.decode_label(read_label_png(path), path)

    def decode_label(self, raw: np.ndarray, source="label") -> np.ndarray:
        """Dataset label values -> train ids (uint8), checking every value is known."""
        mapped = self.label_lut[raw]
        if (mapped == UNKNOWN).any():
            bad = np.unique(raw[mapped == UNKNOWN])[:10].tolist()
            raise ValueError("%s holds label values %s that %s does not define"
                             % (source, bad, self.kind))
        return mapped.astype(np.uint8)

    def subset(self, indices):
        """A copy restricted to ``indices`` (for quick runs and tests)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.samples = [self.samples[i] for i in indices]
        return clone

    def limit(self, count: Optional[int]):
        return self if count is None or count >= len(self) else self.subset(range(count))

    def __repr__(self):
        return "%s(%s, split=%r, %d samples, %d classes)" % (
            type(self).__name__, self.root, self.split, len(self), self.num_classes)


def read_label_png(path) -> np.ndarray:
    """Reads a single-channel label PNG as stored (palette PNGs give indices, not colours)."""
    from PIL import Image  # OpenCV would expand a palette PNG to colours

    with Image.open(str(path)) as image:
        if image.mode not in ("L", "P"):
            raise ValueError("label %s is a %s image; expected 8-bit single-channel or palette"
                             % (path, image.mode))
        return np.array(image)


def identity_lut(num_classes: int, ignore_values=(IGNORE_INDEX,)) -> np.ndarray:
    """Values 0..num_classes-1 stay, ``ignore_values`` become the ignore label, others unknown."""
    lut = np.full(256, UNKNOWN, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    for value in ignore_values:
        lut[value] = IGNORE_INDEX
    return lut


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError("%s not found: %s" % (what, path))
    return path
