"""Image in, labels and renderings out: a ``Segmenter`` plus the colour mask, overlay and
confidence.

``Pipeline.run(image)`` preprocesses, runs the backend, takes the argmax, sizes the labels and
paints the colour mask, the overlay and the confidence that were asked for; it is
``render(image, infer(image))``. ``predict``, ``bag eval`` and the in-process reference of
``bench node`` call ``run``; the ROS node calls ``infer_batch`` on its model thread and
``render`` on its publish thread (see ros/segment_node.py). ROS-free.
"""
import time
from typing import NamedTuple, Optional

import cv2
import numpy as np

from ..models.classes import generic_palette
from .render import Renderer
from .resize import resize_to
from .segmenter import Segmenter

RESOLUTIONS = ("input", "model")
RELEASE_FACTOR = 4  # a frame this many times smaller than the largest lets that one's memory go
RELEASE_FRAMES = 3  # trims after that: the large frame's last buffers may still be in flight


def confidence_mono8(probability):
    """Probabilities (0..1) as bytes, round(255 p): what a mono8 confidence image holds."""
    return np.rint(probability * np.float32(255.0)).astype(np.uint8)


class FrameTiming(NamedTuple):
    """Milliseconds per stage of one ``run``; a stage that was not asked for is 0."""
    preprocess_ms: float
    inference_ms: float      # forward and argmax
    postprocess_ms: float    # labels (and confidence) to the output size
    color_ms: float
    overlay_ms: float
    confidence_ms: float

    @property
    def total_ms(self):
        return sum(self)


class Outputs(NamedTuple):
    labels: np.ndarray                    # HxW uint8 class ids
    color: Optional[np.ndarray]           # HxWx3 uint8 palette colours, RGB
    overlay: Optional[np.ndarray]         # HxWx3 uint8, in the input image's channel order
    confidence: Optional[np.ndarray]      # HxW maximum class probability: float32, or uint8
    timing: FrameTiming                   # round(255 p) when written into a uint8 buffer


class Inferred(NamedTuple):
    """What ``infer`` gives ``render``: the model's output for one image (arrays owned)."""
    labels: np.ndarray                    # class ids at the model's resolution
    probability: Optional[np.ndarray]     # maximum class probability, same size, or None
    preprocess_ms: float
    inference_ms: float


class Buffers(NamedTuple):
    """Arrays ``run`` writes its outputs into (e.g. outgoing message buffers); None: its own."""
    labels: Optional[np.ndarray] = None
    color: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None


class Pipeline:
    """A segmenter plus its renderer. ``backend``/``precision`` are what really runs."""

    def __init__(self, segmenter, palette="dataset", alpha=0.5, visible=None):
        self.segmenter = segmenter
        self.entry = segmenter.entry
        self.renderer = Renderer(self._palette(palette), alpha, visible)
        self.warmup_ms = None  # median inference ms of the last warm-up
        self._peak_pixels = 0
        self._trims_left = 0

    @classmethod
    def build(cls, model, weights=None, device="cpu", input_size="native", backend="torch",
              precision="fp32", fallback=True, backend_options=None, palette="dataset",
              alpha=0.5, visible=None, warmup_frames=0):
        """Loads ``model`` from the zoo on ``backend``; warms up when ``warmup_frames``.

        Raises WeightsError / KeyError / BackendUnavailable / RuntimeError with a readable
        message on failure.
        """
        segmenter = Segmenter.from_zoo(model, weights=weights, device=device,
                                       input_size=input_size, backend=backend,
                                       precision=precision, fallback=fallback,
                                       backend_options=backend_options)
        pipeline = cls(segmenter, palette, alpha, visible)
        if warmup_frames:
            pipeline.warm_up(warmup_frames)
        return pipeline

    @property
    def expected_fps(self):
        """Inference-only frames per second from the last warm-up (None: not warmed up)."""
        return 1e3 / self.warmup_ms if self.warmup_ms else None

    @property
    def backend(self):
        return self.segmenter.backend_name

    @property
    def precision(self):
        return self.segmenter.precision

    @property
    def device(self):
        return self.segmenter.device

    @property
    def model_size(self):
        return self.segmenter.input_size or self.entry.input_size

    def _palette(self, kind):
        if kind == "dataset":
            return self.entry.palette
        if kind == "generic":
            return generic_palette(self.entry.num_classes)
        raise ValueError("palette must be 'dataset' or 'generic', got %r" % (kind,))

    def set_palette(self, kind):
        renderer = self.renderer
        self.renderer = Renderer(self._palette(kind), renderer.alpha, renderer.visible)

    def output_size(self, image, resolution="input"):
        """(width, height) of the outputs for ``image``: its own, or the model's."""
        if resolution not in RESOLUTIONS:
            raise ValueError("resolution must be one of %s, got %r" % (RESOLUTIONS, resolution))
        if resolution == "model" and self.segmenter.input_size:
            return tuple(self.segmenter.input_size)
        return image.shape[1], image.shape[0]

    def run(self, image, order="bgr", resolution="input", color=False, overlay=False,
            confidence=False, out=None) -> Outputs:
        """Segments one HxWx3 uint8 ``image`` (channels in ``order``) and renders what is asked.

        ``resolution``: outputs at the image's size ("input") or the model's ("model"). The
        overlay keeps the image's channel order. ``out``: ``Buffers`` to write into; outputs
        not written there are buffers reused by the next call. The same as
        ``render(image, infer(image))``, which a caller may run on two threads.
        """
        outputs = self.render(image, self.infer(image, order, confidence), order, resolution,
                              color, overlay, out)
        self.frame_done(image)
        return outputs

    def frame_done(self, image):
        """Returns a large frame's memory to the system once a much smaller one has passed.

        The buffers follow the frame size, so the large ones are freed by now or soon (another
        thread, e.g. a node's publish thread, may still hold the large frame's last ones);
        glibc would still keep their memory (see espnet_ros/malloc.py), so it is asked on each
        of the next RELEASE_FRAMES frames.
        """
        pixels = image.shape[0] * image.shape[1]
        if pixels * RELEASE_FACTOR < self._peak_pixels:
            self._trims_left = RELEASE_FRAMES
            self._peak_pixels = pixels
        if self._trims_left:
            from ..malloc import release_memory
            release_memory()
            self._trims_left -= 1
        self._peak_pixels = max(self._peak_pixels, pixels)

    def infer(self, image, order="bgr", confidence=False) -> Inferred:
        """The model's part of ``run``: preprocessing, forward, argmax (and confidence)."""
        return self.infer_batch([image], [order], confidence)[0]

    def infer_batch(self, images, orders, confidence=False):
        """``infer`` for several images (e.g. one per camera, of any sizes and channel orders)
        in one forward call: each is resized to the model input. Every ``Inferred`` carries the
        batch's preprocess and forward times (the time each frame spent in them)."""
        labels, probability = self.segmenter.predict(images, orders, confidence)
        return [self._inferred(labels[i], probability[i] if confidence else None)
                for i in range(len(images))]

    def _inferred(self, labels, probability, first=True):
        seg = self.segmenter.last_timing
        return Inferred(labels.copy(), None if probability is None else probability.copy(),
                        seg.preprocess_ms if first else 0.0, seg.inference_ms if first else 0.0)

    def render(self, image, inferred, order="bgr", resolution="input", color=False,
               overlay=False, out=None) -> Outputs:
        """The rest of ``run``: labels (and confidence) at the output size, mask, overlay."""
        out = out or Buffers()
        size = self.output_size(image, resolution)
        small = inferred.labels
        t0 = time.perf_counter()
        labels = resize_to(small, size, out=out.labels)
        t1 = time.perf_counter()
        mask = None
        if color:
            mask = self.renderer.color_mask(small, "rgb", out=out.color, size=size)
        t2 = time.perf_counter()
        blended = None
        if overlay:
            base = image if (image.shape[1], image.shape[0]) == size else cv2.resize(
                image, size, interpolation=cv2.INTER_AREA)
            same_order = mask if order == "rgb" else None
            if same_order is None:
                same_order = self.renderer.color_mask(small, order, size=size)
            blended = self.renderer.overlay(base, labels, order, out=out.overlay,
                                            mask=same_order)
        t3 = time.perf_counter()
        conf = None
        if inferred.probability is not None:  # nearest: each label keeps its own confidence
            probability = inferred.probability
            if out.confidence is not None and out.confidence.dtype == np.uint8:
                probability = confidence_mono8(probability)  # at model size: fewer pixels
            conf = resize_to(probability, size, out=out.confidence)
        t4 = time.perf_counter()
        timing = FrameTiming(inferred.preprocess_ms, inferred.inference_ms, (t1 - t0) * 1e3,
                             (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
        return Outputs(labels, mask, blended, conf, timing)

    def run_batch(self, images, order="bgr", resolution="input", color=False, overlay=False,
                  confidence=False, out=None):
        """``run`` for several images in one forward pass; ``out``: one ``Buffers`` each
        (without it, a batch of several gets fresh arrays: reused ones would overwrite each
        other)."""
        labels, probability = self.segmenter.predict(images, order, confidence)
        if out is None and len(images) > 1:
            out = [self._fresh_buffers(self.output_size(image, resolution), color, overlay,
                                       confidence) for image in images]
        results = []
        for i, image in enumerate(images):
            inferred = self._inferred(labels[i], probability[i] if confidence else None, i == 0)
            results.append(self.render(image, inferred, order, resolution, color, overlay,
                                       out[i] if out else None))
        return results

    @staticmethod
    def _fresh_buffers(size, color, overlay, confidence):
        width, height = size
        return Buffers(np.empty((height, width), np.uint8),
                       np.empty((height, width, 3), np.uint8) if color else None,
                       np.empty((height, width, 3), np.uint8) if overlay else None,
                       np.empty((height, width), np.float32) if confidence else None)

    def warm_up(self, frames):
        """One untimed pass (allocations, lazy init), then ``frames`` timed ones on a grey frame.

        Returns the median inference ms of the timed passes.
        """
        width, height = self.model_size
        image = np.full((height, width, 3), 128, np.uint8)
        self.segmenter.predict([image])
        times = []
        for _ in range(max(1, frames)):
            start = time.perf_counter()
            self.segmenter.predict([image])
            times.append((time.perf_counter() - start) * 1e3)
        median = float(np.median(times))
        self.warmup_ms = median
        return median
