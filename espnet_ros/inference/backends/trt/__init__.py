"""torch2trt / TensorRT backend (Jetson and desktop NVIDIA GPUs), fixed input shape.

Flow: local converters registered -> the model converted whole, or ENet in pieces with its
pooling indices and unpooling left in PyTorch CUDA -> each engine validated against PyTorch on
a fresh input -> engines kept in the persistent cache. Written for JetPack 4.6 (TensorRT 8.2,
torch2trt 0.5, torch 1.10) and newer; TensorRT never ran on the machines this was developed
on, so everything that needs it is behind imports done at build time only.
"""
import copy
import importlib
import inspect
from collections import OrderedDict

import torch

from ...artifact_cache import model_args as key_model_args
from .. import pieces
from ..base import Backend, BackendUnavailable, register, runtime_check
from ..pieces import record_piece_inputs  # noqa: F401  (used here, re-exported)
from ..validate import ValidationError, validate
from . import converters, engine_cache, support
from .convert import ConversionRefused, convert

LABEL_PIECES = ("model", "fullconv")  # pieces whose output is the logits


def _torch_load(path):
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # the engine is stored as a bytearray in the state dict
    return torch.load(str(path), **kwargs)


def engine_bytes(engine):
    """Size of a TRTModule's serialized engine, which its state dict holds as bytes."""
    blob = engine.state_dict().get("engine")
    return len(blob) if blob is not None else 0


@register
class Torch2trtBackend(Backend):
    """Options: ``cache_dir`` (engine cache), ``calibration`` (int8: preprocessed NCHW
    tensors of real frames), ``workspace`` (bytes)."""

    name = "torch2trt"
    fixed_shape = True

    @classmethod
    def check(cls, device, precision):
        reason = runtime_check(device, precision, "cuda", modules=("tensorrt", "torch2trt"))
        if reason:
            return reason
        _, capability = support.gpu_identity(device)
        return support.precision_support(precision, capability, *support.builder_flags())

    def _build(self, model):
        torch2trt = importlib.import_module("torch2trt")
        versions = support.library_versions()
        gpu_name, capability = support.gpu_identity(self.device)
        model = copy.deepcopy(model).eval().to(self.device)
        selected = converters.select_converters(versions["torch2trt"], model)
        converters.register_converters(torch2trt, selected)
        self.info["versions"] = "torch2trt %s, TensorRT %s" % (versions["torch2trt"],
                                                               versions["tensorrt"])
        self.info["gpu"] = "%s (sm_%d%d)" % ((gpu_name,) + tuple(capability))
        self.info["local converters"] = ", ".join(c.method for c in selected) or "none"
        self.info["engines"] = OrderedDict()
        self.engine_bytes = 0  # all pieces together, for the model-size report

        calibration, calibration_sha = {}, None
        if self.precision == "int8":
            frames = self.options.get("calibration")
            if not frames:
                raise BackendUnavailable("int8 needs calibration frames (option calibration)")
            frames = [f.to(self.device) if f.dim() == 4 else f[None].to(self.device)
                      for f in frames]
            calibration = record_piece_inputs(model, frames)
            calibration_sha = engine_cache.tensors_sha256(frames)
        cache = engine_cache.EngineCache(self.options.get("cache_dir"))
        weights = engine_cache.weights_sha256(model)
        model_args = key_model_args(model, self.entry)

        def convert_piece(name, module, inputs):
            fields = engine_cache.cache_fields(
                weights, model_args, self.input_shape, self.precision, versions["torch2trt"],
                versions["tensorrt"], gpu_name, capability, piece=name,
                piece_shapes=[tuple(t.shape) for t in inputs], calibration=calibration_sha)

            def build():
                return convert(torch2trt.torch2trt, module, inputs, self.precision,
                               calibration.get(name), self.options.get("workspace") or
                               (1 << 28), name)

            def save(engine, path):
                torch.save(engine.state_dict(), str(path))

            def load(path):
                engine = torch2trt.TRTModule()
                engine.load_state_dict(_torch_load(path))
                return engine

            def check(engine):
                validate(module, engine, inputs[0], self.precision,
                         check_labels=name in LABEL_PIECES)

            engine, how = cache.get_or_build(fields, build, save, load, check)
            self.info["engines"][name] = how
            self.engine_bytes += engine_bytes(engine)
            return engine

        sample = torch.randn(self.input_shape, device=self.device)
        try:
            self._forward = pieces.convert_model(model, sample, convert_piece)
            result = validate(model, self._forward, sample, self.precision)
        except (ConversionRefused, ValidationError, NotImplementedError) as exc:
            raise BackendUnavailable("torch2trt conversion rejected: %s" % exc) from exc
        self.info["validation"] = "agreement %.5f, relative error %.2g" % (
            result.agreement, result.relative_error)

    def forward(self, batch):
        if tuple(batch.shape) != self.input_shape:
            raise ValueError("torch2trt engine built for %s, got %s"
                             % (self.input_shape, tuple(batch.shape)))
        return self._forward(batch.to(self.device, non_blocking=True).contiguous())
