"""``espnet-ros info``: versions, devices and available backends."""
import importlib
import platform

import torch

from .. import __version__
from ..models.weights import cache_dir


def add_parser(sub):
    p = sub.add_parser("info", help="versions, devices and which backends are available here")
    p.set_defaults(func=run)


def _version(module):
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # an installed but broken module is still "unavailable"
        return "unavailable (%s)" % str(exc).splitlines()[0][:80]
    return getattr(mod, "__version__", "available")


def _backend_state(name, device, library=None):
    """What the backend itself says about running here (the check the segmenter uses)."""
    from ..inference.backends import availability

    reason = availability(device)[name]
    if reason is not None:
        return "unavailable (%s)" % reason
    return "available" + (" (%s %s)" % (library, _version(library)) if library else "")


def gather():
    cuda = torch.cuda.is_available()
    devices = ["cpu (%d threads)" % torch.get_num_threads()]
    if cuda:
        devices += ["cuda:%d %s (sm_%d%d)" % ((i, torch.cuda.get_device_name(i))
                                              + torch.cuda.get_device_capability(i))
                    for i in range(torch.cuda.device_count())]
    return {
        "espnet_ros": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "opencv": _version("cv2"),
        "devices": ", ".join(devices),
        "backend torch-cpu": _backend_state("torch", "cpu"),
        "backend torch-cuda": _backend_state("torch", "cuda"),
        "backend onnxruntime": _backend_state("onnxruntime", "cpu", "onnxruntime"),
        "backend openvino": _backend_state("openvino", "cpu", "openvino"),
        "backend torch2trt": _backend_state("torch2trt", "cuda", "torch2trt"),
        "tensorrt": _version("tensorrt"),
        "rclpy": _version("rclpy"),
        "cv_bridge": _version("cv_bridge"),
        "weights cache": str(cache_dir()),
    }


def run(args):
    info = gather()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print("%s  %s" % (key.ljust(width), value))
    return 0
