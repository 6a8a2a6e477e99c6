"""Frames from an image folder, one image or a video, as BGR arrays: what ``bag make`` and the
camera source read."""
from pathlib import Path

import cv2

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


class SourceError(RuntimeError):
    """The source cannot be read."""


def folder_frames(path):
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError("no images (%s) in %s" % (", ".join(IMAGE_SUFFIXES), path))
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError("cannot read image %s" % file)
        yield image


def video_frames(path):
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError("cannot open video %s" % path)
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def image_frame(path):
    """The one frame of an image file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError("cannot read image %s" % path)
    yield image
