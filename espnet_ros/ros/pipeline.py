"""The node's inference pipeline: segmenter + renderer + the settings they were built with.

ROS-free: the node rebuilds one of these when the model or backend changes and swaps it in
only once it has loaded and warmed up.
"""
import logging
import time

import numpy as np

from ..inference import Renderer, Segmenter
from ..models.classes import generic_palette

LOG = logging.getLogger("espnet_ros")


class Pipeline:
    def __init__(self, segmenter, backend_name, precision):
        self.segmenter = segmenter
        self.entry = segmenter.entry
        self.backend = backend_name
        self.precision = precision
        self.renderer = Renderer(self.entry.palette)
        self.expected_fps = None

    @property
    def model_size(self):
        return self.segmenter.input_size or self.entry.input_size

    def set_palette(self, kind):
        palette = self.entry.palette if kind == "dataset" else generic_palette(self.entry.num_classes)
        visible = self.renderer.visible
        alpha = self.renderer.alpha
        self.renderer = Renderer(palette, alpha, visible)

    def warm_up(self, frames):
        """One untimed pass (allocations, lazy init), then ``frames`` timed ones on a grey frame.

        Returns the median inference ms of the timed passes.
        """
        width, height = self.model_size
        image = np.full((height, width, 3), 128, np.uint8)
        self.segmenter.segment(image, "bgr", "model")
        times = []
        for _ in range(max(1, frames)):
            start = time.perf_counter()
            self.segmenter.segment(image, "bgr", "model")
            times.append((time.perf_counter() - start) * 1e3)
        median = float(np.median(times))
        self.expected_fps = 1e3 / median if median > 0 else None
        return median


def backend_options(config):
    """Backend options from the node's parameters (only those set)."""
    options = {}
    if config.get("calibration_file"):
        options["calibration_file"] = config["calibration_file"]
    return options


def build_pipeline(config):
    """Builds (and warms up) a pipeline from the node's parameter values.

    Raises WeightsError / KeyError / RuntimeError with a readable message on failure.
    """
    size = "native"
    if config["input_width"] and config["input_height"]:
        size = (int(config["input_width"]), int(config["input_height"]))
    segmenter = Segmenter.from_zoo(config["model"], weights=config["weights"] or None,
                                   device=config["device"], input_size=size,
                                   backend=config["backend"], precision=config["precision"],
                                   fallback=config["allow_fallback"],
                                   backend_options=backend_options(config))
    backend, precision = segmenter.backend_name, segmenter.precision
    pipeline = Pipeline(segmenter, backend, precision)
    pipeline.set_palette(config["palette"])
    pipeline.warm_up(config["warmup_frames"])
    return pipeline
