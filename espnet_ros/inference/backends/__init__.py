"""Inference backends behind one interface: torch (CPU/CUDA), onnxruntime and openvino (CPU),
torch2trt.

``create_backend(model, entry, input_shape, name, device, precision, fallback)`` returns an
object with ``forward(batch) -> logits``, ``name``, ``precision``, ``device`` and ``info``;
``select_backend`` resolves a name (or "auto") to one that can run here, once, and
``build_backend`` builds that choice per input shape. Heavy libraries (onnxruntime, OpenVINO,
TensorRT) are imported only when their backend is checked or built.
"""
from . import onnxruntime_backend, openvino_backend, torch_backend, trt  # noqa: F401  (registers)
from .base import (
    AUTO,
    PRECISIONS,
    Backend,
    BackendUnavailable,
    Choice,
    get,
    names,
    register,
    select_backend,
)
from .factory import ShapeDispatch, build_backend, create_backend, trial


def availability(device="cpu", precision="fp32"):
    """{backend name: None if it can run with device/precision, else the reason}."""
    return {name: get(name).check(device, precision) for name in names()}


__all__ = ["AUTO", "PRECISIONS", "Backend", "BackendUnavailable", "Choice", "ShapeDispatch",
           "availability", "build_backend", "create_backend", "get", "names", "register",
           "select_backend", "trial"]
