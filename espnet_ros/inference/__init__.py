"""The inference core: preprocessing, the segmenter, rendering and the frame pipeline (no ROS)."""
from .pipeline import Buffers, FrameTiming, Inferred, Outputs, Pipeline
from .preprocess import Preprocessor
from .render import Renderer, map_ids, palette_lut
from .segmenter import Segmenter

__all__ = ["Buffers", "FrameTiming", "Inferred", "Outputs", "Pipeline", "Preprocessor",
           "Renderer", "Segmenter", "map_ids", "palette_lut"]
