"""Frames for benchmarks: real ones from the shared data folder, or a synthetic stand-in."""
import os
from pathlib import Path

import cv2
import numpy as np

DATA_ENV = "ESPNET_ROS_DATA"


def data_root():
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


def real_frames(root=None, camvid=4):
    """[(name, BGR uint8 image)]: the Cityscapes samples and every n-th CamVid test frame.

    Empty when the data folder is not set or lacks the frames.
    """
    root = Path(root) if root else data_root()
    if root is None:
        return []
    paths = sorted((root / "cityscapes_samples").glob("*.png"))
    camvid_paths = sorted((root / "camvid" / "test").glob("*.png"))
    if camvid and camvid_paths:
        step = max(1, len(camvid_paths) // camvid)
        paths += camvid_paths[::step][:camvid]
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            frames.append((path.name, image))
    return frames


SAMPLE = "frankfurt_000000_000294_leftImg8bit.png"   # the Cityscapes sample bench system uses


def system_frame(path=None):
    """(BGR image, name) that ``bench system`` resizes to each resolution: ``path``, else the
    Cityscapes sample of the data folder, else (None, "synthetic"). Raises ValueError when
    ``path`` cannot be read."""
    if path is None:
        root = data_root()
        if root is None:
            return None, "synthetic"
        path = root / "cityscapes_samples" / SAMPLE
        if not path.is_file():
            return None, "synthetic"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot read image %s" % path)
    return image, Path(path).name


def synthetic_frame(width, height, seed=0):
    """A smooth random colour image (blurred noise), so that labels are not all one class."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def frame_at(image, size):
    """``image`` resized to ``size`` (width, height), as a camera of that resolution gives it."""
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
