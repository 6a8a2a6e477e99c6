"""Training augmentation: multi-scale random resize, crop, horizontal flip, normalization.

Two kinds: ``TrainTransform`` (a random scale, then a random crop padded with the ignore
label) and ``ResizePass`` (the original ESPNet code's passes: the whole frame resized to one
size, a random crop-and-resize of up to N border pixels with probability 1/2, a flip).

Every random draw comes from a generator seeded with (seed, epoch, pass, sample index), so an
augmented sample depends on nothing else: not on the data-loader worker or the process of a
distributed run that builds it, not on what ran before. That is what makes a resumed run
identical to an uninterrupted one, and N processes equal to one.

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
        self._mean, self._inv = _normalization_arrays(normalization)

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
        return _to_tensors(data, label, self.label_stride)


class ResizePass:
    """One pass of the original recipe: (BGR uint8 image, train-id label) -> (CHW float32
    input of ``size``, HW int64 target).

    The whole frame is resized to ``size`` (width, height; the aspect ratio is not kept, as in
    the original ``Scale``); with probability 1/2, up to ``crop_resize`` pixels are cut from
    the left/right and top/bottom borders and the rest resized back to ``size`` (the original
    ``RandomCropResize``); then a left-right flip with probability 1/2.
    """

    def __init__(self, normalization, size: Tuple[int, int], crop_resize: int = 0,
                 flip: bool = True, label_stride: int = 1, void_id: Optional[int] = None):
        self.size = tuple(int(v) for v in size)
        self.crop_resize = int(crop_resize)
        self.flip = flip
        self.label_stride = int(label_stride)
        self.void_id = void_id
        self._mean, self._inv = _normalization_arrays(normalization)
        self._order = normalization.order

    def __call__(self, image, label, rng: np.random.Generator):
        if self.void_id is not None:
            label = np.where(label == IGNORE_INDEX, self.void_id, label).astype(np.uint8)
        width, height = self.size
        data = _to_model_order(image, self._order).astype(np.float32)
        data = cv2.resize(data, (width, height), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
        if self.crop_resize and rng.random() < 0.5:
            x = int(rng.integers(self.crop_resize + 1))
            y = int(rng.integers(self.crop_resize + 1))
            if 2 * x < width and 2 * y < height:
                data = cv2.resize(data[y:height - y, x:width - x], (width, height),
                                  interpolation=cv2.INTER_LINEAR)
                label = cv2.resize(label[y:height - y, x:width - x], (width, height),
                                   interpolation=cv2.INTER_NEAREST)
        data = (data - self._mean) * self._inv
        if self.flip and rng.random() < 0.5:
            data, label = data[:, ::-1], label[:, ::-1]
        return _to_tensors(data, label, self.label_stride)


class Augmented:
    """Map-style dataset over keys (epoch, pass, index): ``transforms[pass](image, label, rng)``
    of sample ``index`` with a generator seeded by (seed, epoch, pass, index)."""

    def __init__(self, dataset, transforms, seed: int):
        self.dataset = dataset
        self.transforms = list(transforms)
        self.seed = int(seed)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, pass_index, index = key
        image, label = self.dataset[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(pass_index), int(index)])
        return self.transforms[pass_index](image, label, rng)


def _normalization_arrays(normalization):
    scale = np.asarray(normalization.std, np.float32) / np.float32(normalization.scale)
    return np.asarray(normalization.mean, np.float32), (1.0 / scale).astype(np.float32)


def _to_tensors(data, label, label_stride):
    if label_stride > 1:
        h, w = label.shape
        size = (-(-w // label_stride), -(-h // label_stride))  # ceil, as the network's output
        label = cv2.resize(np.ascontiguousarray(label, np.uint8), size,
                           interpolation=cv2.INTER_NEAREST)
    return (np.ascontiguousarray(data.transpose(2, 0, 1)),
            np.ascontiguousarray(label, np.int64))


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
