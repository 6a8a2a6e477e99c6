"""Image -> labels: a zoo model on a backend (``Segmenter``).

The checkpoint's preprocessing, the forward call, the argmax (inference.logits) and, when asked,
the labels resized to the image. ``Pipeline`` wraps it with the renderings for the node,
``predict`` and ``bag eval``; ``eval``, training's validation and the benchmarks call it
directly, so they run the same preprocessing, forward and argmax as the node.
"""
import time
from typing import List, NamedTuple

import numpy as np
import torch

from ..models import create_model
from .logits import argmax_labels, max_probability, model_logits
from .preprocess import Preprocessor
from .resize import resize_to


class Timing(NamedTuple):
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


class Segmenter:
    """Runs a zoo model on uint8 images.

    ``forward`` is the backend: a callable from a normalized NCHW tensor to logits; by default
    the eager PyTorch model. ``input_size`` (width, height) overrides the entry's native size;
    ``None`` there means each image's own size.
    """

    def __init__(self, model, entry, device="cpu", input_size="native", forward=None,
                 backend=None):
        self.entry = entry
        self.backend = backend  # the object behind ``forward`` when built from a backend
        self.device = torch.device(backend.device if backend is not None else device)
        self.model = model.to(self.device).eval()
        size = entry.input_size if input_size == "native" else input_size
        self.preprocess = Preprocessor(entry.normalization, size, self.device)
        self.forward = forward or backend or self.model
        self.last_timing = Timing(0.0, 0.0, 0.0)
        self._labels = None

    @classmethod
    def from_zoo(cls, name, weights=None, device="cpu", input_size="native", backend="torch",
                 precision="fp32", fallback=True, backend_options=None, **kwargs):
        """A segmenter for a zoo model on an inference backend (see inference.backends).

        ``backend``: torch, onnxruntime, torch2trt or auto; an unavailable one falls back with
        a warning, or raises BackendUnavailable when ``fallback`` is False. The backend is built
        now for the input size (so failures show here), or per image size when that is None.
        """
        from .backends import ShapeDispatch  # keeps `import espnet_ros.inference` light

        model, entry = create_model(name, weights=weights, **kwargs)
        dispatch = ShapeDispatch(model, entry, backend, device, precision, fallback,
                                 backend_options)
        size = entry.input_size if input_size == "native" else input_size
        if size:
            dispatch.backend_for((1, 3, size[1], size[0]))
        return cls(model, entry, dispatch.device, input_size, forward=dispatch, backend=dispatch)

    @property
    def backend_name(self):
        return self.backend.name if self.backend is not None else "torch"

    @property
    def precision(self):
        return self.backend.precision if self.backend is not None else "fp32"

    @property
    def input_size(self):
        return self.preprocess.size

    def logits(self, batch):
        """Full model-resolution logits for a preprocessed batch."""
        return model_logits(self.forward, batch)

    def predict(self, images, order="bgr", confidence=False):
        """Labels (uint8 HxW) per image at the model's resolution, and with ``confidence`` the
        per-pixel maximum class probability (float32 HxW), else None.

        The arrays are buffers reused by the next call: copy them to keep them.
        """
        t0 = time.perf_counter()
        batch = self.preprocess(images, order)
        t1 = time.perf_counter()
        logits = self.logits(batch)
        labels = self.argmax(logits)
        probability = max_probability(logits) if confidence else None
        t2 = time.perf_counter()
        self.last_timing = Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, 0.0)
        return list(labels), (list(probability) if confidence else None)

    def segment_batch(self, images, order="bgr", output_size="input") -> List[np.ndarray]:
        """Labels (uint8 HxW) per image, at the input's size or, with "model", the model's."""
        labels, _ = self.predict(images, order)
        t2 = time.perf_counter()
        if output_size == "input":
            labels = [resize_to(label, (image.shape[1], image.shape[0]))
                      for image, label in zip(images, labels)]
        self.last_timing = self.last_timing._replace(
            postprocess_ms=(time.perf_counter() - t2) * 1e3)
        return labels

    def segment(self, image, order="bgr", output_size="input") -> np.ndarray:
        return self.segment_batch([image], order, output_size)[0]

    def argmax(self, logits):
        """Labels (uint8 NxHxW array) of ``logits``, in a buffer reused by the next call."""
        self._labels = argmax_labels(logits, self._labels)
        return self._labels.numpy()
