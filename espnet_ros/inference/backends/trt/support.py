"""Versions, GPU identity and precision support for the TensorRT path (import-safe anywhere)."""
import functools
import importlib
import re

import torch


def parse_version(text):
    """(major, minor, patch) from strings like "8.2.1.8", "0.5.0+cu114", "master"; unknown -> ()."""
    match = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not match:
        return ()
    return tuple(int(v) for v in match.groups(default="0"))


def distribution_version(name, module=None):
    """Installed version of a distribution, or the module's ``__version__``, or "unknown"."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 (JetPack 4 system Python)
        metadata = None
    if metadata is not None:
        try:
            return metadata.version(name)
        except Exception:  # not installed as a distribution (JetPack's system tensorrt)
            pass
    else:
        try:
            import pkg_resources
            return pkg_resources.get_distribution(name).version
        except Exception:  # not installed through pip
            pass
    if module is not None:
        return str(getattr(module, "__version__", "unknown"))
    return "unknown"


def library_versions():
    """{"torch2trt": ..., "tensorrt": ...}; raises ImportError when either is missing."""
    tensorrt = importlib.import_module("tensorrt")
    torch2trt = importlib.import_module("torch2trt")
    return {"torch2trt": distribution_version("torch2trt", torch2trt),
            "tensorrt": str(getattr(tensorrt, "__version__", None) or
                            distribution_version("tensorrt"))}


def gpu_identity(device):
    """(name, (major, minor)) of a CUDA device."""
    device = torch.device(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index))


# Compute capabilities with fast fp16 / int8 math, as TensorRT reports them through
# builder.platform_has_fast_fp16 / platform_has_fast_int8 (used instead when a builder exists).
# Desktop Pascal (6.1) runs fp16 at 1/64 rate; Jetson TX2 (6.2) and Nano/TX1 (5.3) have fast
# fp16 but no DP4A, so no fast int8.
_FAST_FP16 = {(5, 3), (6, 0), (6, 2)}
_FAST_INT8 = {(6, 1)}
_NAMES = {(6, 2): "Jetson TX2", (5, 3): "Jetson Nano/TX1"}


def precision_support(precision, capability, fast_fp16=None, fast_int8=None):
    """None when ``precision`` runs fast on a GPU of ``capability``, else the reason.

    ``fast_fp16``/``fast_int8``: TensorRT's own answer where known (it wins over the table).
    """
    capability = tuple(capability)
    where = "sm_%d%d" % capability + (" (%s)" % _NAMES[capability] if capability in _NAMES else "")
    if precision == "fp32":
        return None
    if precision == "fp16":
        fast = fast_fp16 if fast_fp16 is not None else (
            capability >= (7, 0) or capability in _FAST_FP16)
        return None if fast else "%s has no fast fp16" % where
    if precision == "int8":
        fast = fast_int8 if fast_int8 is not None else (
            capability >= (7, 0) or capability in _FAST_INT8)
        return None if fast else "%s has no fast int8 (needs DP4A or tensor cores)" % where
    return "unknown precision %r" % precision


@functools.lru_cache(maxsize=1)
def builder_flags():
    """(fast_fp16, fast_int8) as TensorRT reports them, or (None, None) when it cannot say.

    Cached: a builder creates a CUDA context, too costly for every availability check."""
    try:
        trt = importlib.import_module("tensorrt")
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        return bool(builder.platform_has_fast_fp16), bool(builder.platform_has_fast_int8)
    except Exception:  # no TensorRT, no GPU, or a TensorRT without these attributes
        return None, None
