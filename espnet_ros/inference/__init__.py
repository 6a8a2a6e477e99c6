"""The inference core: preprocessing, the segmenter and rendering (no ROS)."""
from .preprocess import Preprocessor
from .render import Renderer, map_ids, palette_lut
from .segmenter import Segmenter

__all__ = ["Preprocessor", "Renderer", "Segmenter", "map_ids", "palette_lut"]
