"""Persistent cache of built TensorRT engines (no TensorRT needed to use or test it).

An engine is only valid for the exact weights, model arguments, input shape, precision,
torch2trt and TensorRT versions and GPU it was built for, so the key is the sha256 of all of
them. A changed field gives a new key (the old file is simply not used); an unreadable or
mismatching file is removed with a warning and rebuilt. Files are written atomically.
"""
import os
from collections import OrderedDict
from pathlib import Path

from ...artifact_cache import (  # noqa: F401  (re-exported: the engine cache's key helpers)
    ArtifactCache,
    cache_key,
    tensors_sha256,
    weights_sha256,
)

CACHE_ENV = "ESPNET_ROS_ENGINE_CACHE"
# Bump when the file layout or the project-local converters change what an engine contains.
FORMAT_VERSION = 1


def cache_dir():
    base = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "espnet_ros"
    return Path(os.environ.get(CACHE_ENV, str(base / "engines")))


def cache_fields(weights, model_args, input_shape, precision, torch2trt_version, tensorrt_version,
                 gpu_name, compute_capability, piece="model", piece_shapes=None, calibration=None):
    """The fields that identify an engine, in a fixed order (JSON-serializable)."""
    return OrderedDict([
        ("format", FORMAT_VERSION),
        ("weights_sha256", weights),
        ("model_args", model_args),
        ("input_shape", [int(v) for v in input_shape]),
        ("piece", piece),
        ("piece_shapes", [[int(v) for v in shape] for shape in (piece_shapes or [])]),
        ("precision", precision),
        ("torch2trt", str(torch2trt_version)),
        ("tensorrt", str(tensorrt_version)),
        ("gpu", str(gpu_name)),
        ("compute_capability", "%s.%s" % tuple(compute_capability)),
        ("calibration_sha256", calibration),
    ])


class EngineCache(ArtifactCache):
    """Engines as ``<key>.engine`` plus ``<key>.json`` (the fields, for people and checks)."""

    what = "engine cache"
    noun = "engine"

    def __init__(self, root=None):
        super().__init__(root or cache_dir(), ".engine")
