"""The original ESPNet inference steps, image in -> labels out, as the speed reference.

Written from the README's description of the original code's convention (never copied): the
whole frame as float, per-channel (x - mean) / std at full resolution, a bilinear resize to
the model size, a second division by 255, HWC -> NCHW, the eager forward, the argmax over the
classes (encoder-only models: logits upsampled x8 bilinearly first). Each stage is timed.
"""
import time
from collections import OrderedDict

import cv2
import numpy as np
import torch
from torch.nn import functional as F


class OriginalCode:
    """``__call__(bgr_image) -> (labels uint8 HxW at the model size, {stage: ms})``."""

    def __init__(self, model, entry, size):
        self.model = model.eval()
        self.size = tuple(size)   # (width, height)
        norm = entry.normalization
        if norm.order != "bgr":
            raise ValueError("the original code reads BGR; %s wants %s" % (entry.name, norm.order))
        self.mean = [float(v) for v in norm.mean]
        self.std = [float(v) for v in norm.std]
        self.divisor = 1.0 / float(norm.scale)   # 255: the second division

    def preprocess(self, image):
        data = image.astype(np.float32)
        for c in range(3):                 # per channel, at the frame's full resolution
            data[:, :, c] -= self.mean[c]
        for c in range(3):
            data[:, :, c] /= self.std[c]
        data = cv2.resize(data, self.size)  # bilinear (OpenCV's default)
        data /= self.divisor
        data = data.transpose((2, 0, 1))
        return torch.from_numpy(data).unsqueeze(0)

    def __call__(self, image):
        times = OrderedDict()
        start = time.perf_counter()
        batch = self.preprocess(image)
        times["preprocess"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        with torch.no_grad():
            logits = self.model(batch)
        times["forward"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        if logits.shape[2:] != batch.shape[2:]:
            logits = F.interpolate(logits, size=batch.shape[2:], mode="bilinear",
                                   align_corners=True)
        labels = logits[0].argmax(0).to(torch.uint8).numpy()
        times["argmax"] = (time.perf_counter() - start) * 1e3
        return labels, times
