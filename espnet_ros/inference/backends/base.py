"""The backend interface, the registry and the choice of a backend that can run here.

A backend turns (model, entry, input shape, device, precision) into ``forward(batch) -> logits``.
Asking for one that cannot run here either falls back, with a warning on the "espnet_ros"
logger naming the reason and the replacement, or raises ``BackendUnavailable`` when the caller
asked for no fallback.
"""
import importlib
import logging
from collections import OrderedDict
from typing import NamedTuple, Tuple

import torch

LOG = logging.getLogger("espnet_ros")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
AUTO = "auto"

_REGISTRY = OrderedDict()


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (library, device, precision or conversion)."""


class Backend:
    """Base class: subclasses set ``name`` and implement ``check`` and ``_build``.

    ``forward`` takes a normalized NCHW float32 tensor of ``input_shape`` and returns logits
    (float, on any device). Its result may be a buffer reused by the next call.
    """

    name = "base"
    fixed_shape = False  # True: the backend is built for exactly one input shape

    def __init__(self, model, entry, input_shape, device="cpu", precision="fp32", **options):
        self.entry = entry
        self.input_shape = tuple(int(v) for v in input_shape)
        self.device = torch.device(device)
        self.precision = precision
        self.options = options
        self.info = OrderedDict()  # what was applied, for reports and diagnostics
        self._build(model)

    @classmethod
    def check(cls, device, precision):
        """None when this backend can run with ``device`` and ``precision``, else the reason."""
        raise NotImplementedError

    def _build(self, model):
        raise NotImplementedError

    def forward(self, batch):
        raise NotImplementedError

    def __call__(self, batch):
        return self.forward(batch)

    def describe(self):
        return "%s %s on %s" % (self.name, self.precision, self.device)

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.describe())


def register(cls):
    """Class decorator adding a backend to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def names():
    return list(_REGISTRY)


def get(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError("unknown backend %r; known: %s" % (name, ", ".join([AUTO] + names()))) \
            from None


class Choice(NamedTuple):
    """A backend that passed its availability check, and what was changed to get there."""
    name: str
    device: str
    precision: str
    notes: Tuple[str, ...] = ()   # one line per fallback step, already logged


def cuda_available():
    return torch.cuda.is_available()


def runtime_check(device, precision, device_type, precisions=None, modules=()):
    """The opening that the ``check`` of every backend on another runtime shares: None when
    ``device`` is a ``device_type`` ("cpu" or "cuda") device that exists, ``precision`` is one
    of ``precisions`` (None: the backend decides) and ``modules`` import; else the reason."""
    if torch.device(device).type != device_type:
        return "this backend runs on %s only" % ("CPU" if device_type == "cpu" else "CUDA")
    if device_type == "cuda" and not cuda_available():
        return "no CUDA device"
    if precisions is not None and precision not in precisions:
        return "%s is not supported (%s%s)" % (precision, ", ".join(precisions),
                                               " only" if len(precisions) == 1 else "")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # broken installs count as unavailable too
            return "%s is not importable: %s" % (module, str(exc).splitlines()[0][:100])
    return None


def _normalize_device(device):
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    return str(device)


# What to try instead of an unavailable backend, in order (device and precision are adjusted
# by _fallback_steps when the replacement cannot run them).
FALLBACKS = {
    "torch2trt": ("torch",),
    "onnxruntime": ("torch",),
    "openvino": ("torch",),
    "torch": (),
}


def auto_candidates(device):
    """Backends ``auto`` considers, best first; on CPU the order is decided by a timing trial
    (with a calibration file, OpenVINO at its precision joins it: factory._auto_cpu_candidates)."""
    if torch.device(device).type == "cuda":
        return ("torch2trt", "torch")
    return ("torch", "onnxruntime", "openvino")


def _fallback_steps(name, device, precision):
    """(name, device, precision) replacements for an unavailable request, most faithful first."""
    steps = []
    for other in FALLBACKS.get(name, ("torch",)):
        steps.append((other, device, precision))
        if precision == "int8":
            steps.append((other, device, "fp16"))
    if torch.device(device).type == "cuda":
        steps.append(("torch", "cpu", "fp32"))
    elif precision != "fp32":
        steps.append(("torch", device, "fp32"))
    unique = []
    for step in steps:
        if step not in unique and step != (name, device, precision):
            unique.append(step)
    return unique


def select_backend(name, fallback=True, device="cpu", precision="fp32"):
    """Resolves a requested backend to one that can run here and returns a ``Choice``.

    ``auto`` takes the first of ``auto_candidates`` that can run (for CPU, ``create_backend``
    then times the runnable candidates). Without ``fallback`` an unavailable request raises
    ``BackendUnavailable`` with the reason; with it, the replacement is logged as a warning.
    """
    if precision not in PRECISIONS:
        raise ValueError("precision must be one of %s, got %r" % (PRECISIONS, precision))
    if name == AUTO and device in (None, AUTO):
        device = "cuda" if cuda_available() else "cpu"
    device = _normalize_device(device)
    if name == AUTO:
        reasons = []
        for candidate in auto_candidates(device):
            reason = get(candidate).check(device, precision)
            if reason is None:
                return Choice(candidate, device, precision)
            reasons.append("%s: %s" % (candidate, reason))
        name = auto_candidates(device)[-1]
        LOG.info("auto backend: %s", "; ".join(reasons))
    reason = get(name).check(device, precision)
    if reason is None:
        return Choice(name, device, precision)
    if not fallback:
        raise BackendUnavailable("backend %s (%s on %s) is unavailable: %s"
                                 % (name, precision, device, reason))
    return fallback_choice(name, device, precision, reason)


def fallback_choice(name, device, precision, reason):
    """The first runnable replacement for (name, device, precision), logged as a warning."""
    tried = []
    for other, other_device, other_precision in _fallback_steps(name, device, precision):
        other_reason = get(other).check(other_device, other_precision)
        if other_reason is None:
            note = ("backend %s (%s on %s) is unavailable: %s; falling back to %s (%s on %s)"
                    % (name, precision, device, reason, other, other_precision, other_device))
            LOG.warning(note)
            return Choice(other, other_device, other_precision, (note,))
        tried.append("%s %s on %s: %s" % (other, other_precision, other_device, other_reason))
    raise BackendUnavailable("backend %s (%s on %s) is unavailable: %s; no fallback can run "
                             "either (%s)" % (name, precision, device, reason, "; ".join(tried)))
