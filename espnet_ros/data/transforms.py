"""Training augmentation: multi-scale random resize, crop, horizontal flip, normalization.

Every random draw comes from a generator seeded with (seed, epoch, sample index), so an
augmented sample depends on nothing else: not on the data-loader worker that builds it, not
on what ran before. That is what makes a resumed run identical to an uninterrupted one.

The input normalization is the checkpoint's (``espnet_ros.models.zoo.Normalization``) and is
applied as the inference preprocessing does, so a trained model sees the same numbers in
training and in the node.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .base import IGNORE_INDEX


class TrainTransform:
    """(BGR uint8 image, train-id label) -> (CHW float32 input, HW int64 target).

    ``base_size`` (width, height): the frame is first resized to it times a scale drawn from
    ``scales``; a ``crop_size`` window is then cut at random (padding with the ignore label
    where the scaled frame is smaller), flipped left-right with probability 1/2 (a true
    horizontal flip; the original code's ``cv2.flip(img, 0)`` flips upside down).
    ``void_id``: where set, ignored pixels become this class (the original recipe trains void
    as a class). ``label_stride``: the target is down-sampled by it (8 for ESPNet-C, whose
    output is 1/8 of its input), nearest-neighbour as in the original code.
    """

    def __init__(self, normalization, base_size: Tuple[int, int], crop_size: Tuple[int, int],
                 scales: Sequence[float] = (1.0,), flip: bool = True, label_stride: int = 1,
                 void_id: Optional[int] = None):
        self.normalization = normalization
        self.base_size = tuple(int(v) for v in base_size)
        self.crop_size = tuple(int(v) for v in crop_size)
        self.scales = tuple(float(s) for s in scales)
        self.flip = flip
        self.label_stride = int(label_stride)
        self.void_id = void_id
        scale = np.asarray(normalization.std, np.float32) / np.float32(normalization.scale)
        self._mean = np.asarray(normalization.mean, np.float32)
        self._inv = (1.0 / scale).astype(np.float32)

    def __call__(self, image, label, rng: np.random.Generator):
        if self.void_id is not None:  # before padding, which must stay ignored
            label = np.where(label == IGNORE_INDEX, self.void_id, label).astype(np.uint8)
        scale = self.scales[int(rng.integers(len(self.scales)))]
        width = max(1, int(round(self.base_size[0] * scale)))
        height = max(1, int(round(self.base_size[1] * scale)))
        data = _to_model_order(image, self.normalization.order).astype(np.float32)
        if data.shape[:2] != (height, width):
            data = cv2.resize(data, (width, height), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
        data = (data - self._mean) * self._inv  # padding below with 0 = padding with the mean
        data, label = _random_crop(data, label, self.crop_size, rng)
        if self.flip and rng.random() < 0.5:
            data, label = data[:, ::-1], label[:, ::-1]
        if self.label_stride > 1:
            h, w = label.shape
            size = (-(-w // self.label_stride), -(-h // self.label_stride))  # ceil, as the net
            label = cv2.resize(np.ascontiguousarray(label, np.uint8), size,
                               interpolation=cv2.INTER_NEAREST)
        return (np.ascontiguousarray(data.transpose(2, 0, 1)),
                np.ascontiguousarray(label, np.int64))


class Augmented:
    """Map-style dataset over keys (epoch, index): ``transform(image, label, rng)`` of sample
    ``index`` with a generator seeded by (seed, epoch, index)."""

    def __init__(self, dataset, transform, seed: int):
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        image, label = self.dataset[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        return self.transform(image, label, rng)


def _to_model_order(image, order):
    return image[:, :, ::-1] if order == "rgb" else image


def _random_crop(data, label, crop_size, rng):
    crop_w, crop_h = crop_size
    h, w = label.shape
    pad_h, pad_w = max(crop_h - h, 0), max(crop_w - w, 0)
    if pad_h or pad_w:
        data = cv2.copyMakeBorder(data, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                   value=IGNORE_INDEX)
        h, w = label.shape
    y = int(rng.integers(h - crop_h + 1))
    x = int(rng.integers(w - crop_w + 1))
    return data[y:y + crop_h, x:x + crop_w], label[y:y + crop_h, x:x + crop_w]
