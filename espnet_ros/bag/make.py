"""``espnet-ros bag make``: an image folder, a video or a dataset split -> a rosbag2.

One frame = an image (raw or compressed), its camera_info and, when the source has labels, a
mono8 ground-truth label, all with the same header stamp; frames are ``1/rate`` apart.
"""
import json
import time
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import cv2
import numpy as np

from .io import (
    COMPRESSED_TOPIC,
    IGNORE,
    IMAGE_TOPIC,
    INFO_TOPIC,
    LABEL_TOPIC,
    BagError,
    BagWriter,
    camera_info_message,
    image_message,
    label_message,
)

ENCODINGS = ("bgr8", "rgb8", "mono8", "jpeg", "png")


class SourceFrame(NamedTuple):
    name: str
    image: np.ndarray            # BGR uint8
    label: Optional[np.ndarray]  # train ids, 255 = not scored; None without ground truth


class Source(NamedTuple):
    frames: Iterator[SourceFrame]
    description: dict            # what goes into the bag's custom_data


def dataset_source(kind, root, split, limit=None):
    from ..data import build_dataset

    options = {} if kind == "camvid" else {"require_labels": False}
    try:
        dataset = build_dataset(kind, root, split, limit=limit, **options)
    except (OSError, ValueError, ImportError) as exc:
        raise BagError("cannot read the %s %s split under %s: %s" % (kind, split, root, exc)) from exc

    def frames():
        for index, sample in enumerate(dataset.samples):
            try:
                image = dataset.read_image(index)
                label = dataset.read_label(index) if sample.label is not None else None
            except (OSError, ValueError) as exc:
                raise BagError(str(exc)) from exc
            yield SourceFrame(sample.name, image, label)

    return Source(frames(), {"dataset": kind, "split": split, "classes": json.dumps(dataset.classes),
                             "label_ignore": str(IGNORE)})


def media_source(path, limit=None):
    """An image folder or a video: frames without ground truth."""
    from .media import VIDEO_SUFFIXES, SourceError, folder_frames, video_frames

    path = Path(path)
    if path.is_dir():
        generator, kind = folder_frames(path), "image folder"
    elif path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
        generator, kind = video_frames(path), "video"
    else:
        raise BagError("source %s is neither an image folder nor a video (%s); for a dataset pass "
                       "--dataset" % (path, ", ".join(VIDEO_SUFFIXES)))

    def frames():
        try:
            for index, image in enumerate(generator):
                if limit is not None and index >= limit:
                    return
                yield SourceFrame("%06d" % index, image, None)
        except SourceError as exc:
            raise BagError(str(exc)) from exc

    return Source(frames(), {"dataset": kind})


def _resize(frame, size):
    if size is None:
        return frame
    image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    label = None if frame.label is None else cv2.resize(frame.label, size, interpolation=cv2.INTER_NEAREST)
    return SourceFrame(frame.name, image, label)


def make_bag(out, source, rate=10.0, encoding="bgr8", size=None, storage="mcap", version=8,
             start_time=None, frame_id="camera", overwrite=False, camera_info=True,
             labels=True, source_name=""):
    """Writes ``source`` (see dataset_source / media_source) to the bag ``out``; returns a summary.

    ``start_time``: stamp of the first frame in seconds (default: now).
    """
    if encoding not in ENCODINGS:
        raise BagError("encoding must be one of %s, got %r" % (", ".join(ENCODINGS), encoding))
    if rate <= 0:
        raise BagError("rate must be positive, got %s" % rate)
    start_ns = int(round((time.time() if start_time is None else start_time) * 1e9))
    image_topic = COMPRESSED_TOPIC if encoding in ("jpeg", "png") else IMAGE_TOPIC
    count = labelled = 0
    image_size = None
    with BagWriter(out, storage, version, overwrite) as bag:
        for key, value in source.description.items():
            bag.set_custom_data("espnet_ros." + key, value)
        bag.set_custom_data("espnet_ros.source", source_name)
        for frame in source.frames:
            frame = _resize(frame, size)
            height, width = frame.image.shape[:2]
            if frame.label is not None and frame.label.shape != (height, width):
                raise BagError("label/image size mismatch for %s: label %dx%d, image %dx%d (pass "
                               "--size to resize both)" % (frame.name, frame.label.shape[1],
                                                          frame.label.shape[0], width, height))
            stamp = start_ns + int(round(count * 1e9 / rate))
            bag.write(image_topic, stamp, image_message(frame.image, encoding, stamp, frame_id))
            if camera_info:
                bag.write(INFO_TOPIC, stamp, camera_info_message(width, height, stamp, frame_id))
            if labels and frame.label is not None:
                bag.write(LABEL_TOPIC, stamp, label_message(frame.label, stamp, frame_id))
                labelled += 1
            count += 1
            image_size = (width, height)
        if count == 0:
            raise BagError("source %s has no frames" % (source_name or "given"))
        bag.set_custom_data("espnet_ros.frames", count)
        counts = dict(bag.counts)
    return {"bag": str(out), "frames": count, "labelled": labelled, "size": image_size,
            "rate": rate, "storage": storage, "version": int(version), "topics": counts,
            "start_ns": start_ns}
