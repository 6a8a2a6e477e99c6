"""Frames the user points at: a dataset split (espnet_ros.data readers) or a folder of images.

``FrameSet(kind, root, split, count)`` names them; ``read_frames`` returns the chosen frames
(evenly spread over the split, so a video-ordered split is not calibrated on one scene), the
dataset when it has labels, and a sha256 of the pixels (the cache key's calibration field).
"""
import hashlib
from pathlib import Path
from typing import NamedTuple, Optional

import cv2

KINDS = ("camvid", "cityscapes", "folder", "images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class FrameSet(NamedTuple):
    kind: str                      # one of KINDS
    root: str                      # dataset root, or the folder of images
    split: Optional[str] = None    # dataset split (not for "images")
    count: Optional[int] = None    # frames to use, spread evenly; None: all

    def describe(self):
        where = "%s %s" % (self.kind, self.root) + (" (%s)" % self.split if self.split else "")
        return "%s frames of %s" % (self.count or "all", where)

    def to_json(self):
        return {"kind": self.kind, "root": str(self.root), "split": self.split,
                "count": self.count}

    @classmethod
    def from_json(cls, data):
        return cls(data["kind"], data["root"], data.get("split"), data.get("count"))


class Frames(NamedTuple):
    names: list
    images: list           # BGR uint8
    sha256: str
    dataset: object = None  # the SegmentationDataset subset, where the frames have labels
    indices: tuple = ()


def spread(total, count):
    """``count`` indices spread evenly over ``range(total)`` (all of them for None)."""
    if count is None or count >= total:
        return list(range(total))
    if count <= 0:
        raise ValueError("frame count must be positive, got %d" % count)
    return sorted({int(i * total / count) for i in range(count)})


def images_digest(images):
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(image.shape).encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def _image_files(root):
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError("no such image folder: %s" % root)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError("no images (%s) in %s" % ("/".join(IMAGE_SUFFIXES), root))
    return files


def read_frames(frame_set):
    """The frames of ``frame_set`` (raises ValueError / FileNotFoundError / OSError)."""
    if frame_set.kind not in KINDS:
        raise ValueError("unknown frame source %r; known: %s" % (frame_set.kind, ", ".join(KINDS)))
    if frame_set.kind == "images":
        files = _image_files(frame_set.root)
        files = [files[i] for i in spread(len(files), frame_set.count)]
        images = []
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError("cannot read image %s" % path)
            images.append(image)
        return Frames([p.name for p in files], images, images_digest(images))
    from ...data import build_dataset
    options = {"require_labels": False} if frame_set.kind in ("cityscapes", "folder") else {}
    dataset = build_dataset(frame_set.kind, frame_set.root, frame_set.split or "train", **options)
    indices = spread(len(dataset), frame_set.count)
    dataset = dataset.subset(indices)
    images = [dataset.read_image(i) for i in range(len(dataset))]
    names = [s.name for s in dataset.samples]
    return Frames(names, images, images_digest(images), dataset if dataset.has_labels else None,
                  tuple(indices))


def frame_sets(sets):
    """``sets`` as a tuple of FrameSets (one FrameSet or a sequence of them)."""
    return (sets,) if isinstance(sets, FrameSet) else tuple(sets)


def describe(sets):
    return " + ".join(each.describe() for each in frame_sets(sets))


def read_frame_sets(sets):
    """The frames of one FrameSet or of several in order (e.g. Cityscapes samples plus CamVid
    train); several give no dataset (calibration needs no labels)."""
    parts = [read_frames(each) for each in frame_sets(sets)]
    if len(parts) == 1:
        return parts[0]
    images = [image for part in parts for image in part.images]
    return Frames([name for part in parts for name in part.names], images,
                  images_digest(images))
