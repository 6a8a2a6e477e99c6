"""ONNX Runtime backend (CPU): the model exported at a fixed input shape, run by onnxruntime.

ENet is exported in pieces (backends.pieces) because ONNX export has no max-unpooling.
"""
import importlib
import inspect
import io
import warnings

import numpy as np
import torch

from . import pieces
from .base import Backend, BackendUnavailable, register, runtime_check
from .validate import ValidationError, validate

OPSET = 11   # the newest opset torch 1.10 exports everything used here with


def export_onnx(module, inputs):
    """ONNX bytes of ``module`` traced with ``inputs`` (TorchScript exporter, fixed shapes)."""
    buffer = io.BytesIO()
    kwargs = {}
    # torch 2.x defaults to the dynamo exporter (needs onnxscript); the TorchScript one exports
    # these models without extra packages and exists from torch 1.10 on.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    names = ["input_%d" % i for i in range(len(inputs))]
    with torch.no_grad():
        outputs = module(*inputs)
    count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    # The exporter restores the top module's mode recursively; keep every submodule's own.
    modes = [(m, m.training) for m in module.modules()]
    try:
        with warnings.catch_warnings():
            # Expected here: shapes are fixed on purpose (tracer) and the TorchScript exporter
            # is chosen on purpose (deprecation notice of torch 2.x).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, tuple(inputs), buffer, opset_version=OPSET,
                              input_names=names,
                              output_names=["output_%d" % i for i in range(count)],
                              do_constant_folding=True, **kwargs)
    finally:
        for submodule, training in modes:
            submodule.training = training
    return buffer.getvalue()


class OrtPiece:
    """One onnxruntime session with preallocated, reused output buffers (IO binding)."""

    def __init__(self, ort, onnx_bytes, inputs, threads, spinning=False):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            # Idle pool threads that spin steal the cores PyTorch's threads need in the same
            # process (seen here as a 100x slower torch backend after an onnxruntime run).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.binding = self.session.io_binding()
        self._ort = ort
        self._outputs = None

    def _bind_outputs(self, shapes):
        self._outputs = [torch.empty(shape, dtype=torch.float32) for shape in shapes]
        for name, out in zip(self.output_names, self._outputs):
            self.binding.bind_output(name, "cpu", 0, np.float32, list(out.shape), out.data_ptr())

    def __call__(self, *inputs):
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), np.float32) for t in inputs]
        for name, array in zip(self.input_names, arrays):
            self.binding.bind_cpu_input(name, array)
        if self._outputs is None:
            # First call: let onnxruntime allocate, then keep buffers of those shapes.
            results = self.session.run(self.output_names, dict(zip(self.input_names, arrays)))
            self._bind_outputs([r.shape for r in results])
            outputs = [torch.from_numpy(r) for r in results]
        else:
            self.session.run_with_iobinding(self.binding)
            outputs = self._outputs
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


@register
class OnnxRuntimeBackend(Backend):
    """Options: ``threads`` (intra-op threads; default: torch's thread count), ``spinning``
    (let idle pool threads spin; default False, see OrtPiece)."""

    name = "onnxruntime"
    fixed_shape = True

    @classmethod
    def check(cls, device, precision):
        return runtime_check(device, precision, "cpu", ("fp32",), ("onnxruntime", "onnx"))

    def _build(self, model):
        ort = importlib.import_module("onnxruntime")
        threads = self.options.get("threads") or torch.get_num_threads()
        model = model.eval()

        def convert(name, module, inputs):
            try:
                return OrtPiece(ort, export_onnx(module, inputs), inputs, threads,
                                self.options.get("spinning", False))
            except Exception as exc:  # exporter and runtime raise many types
                raise BackendUnavailable("ONNX export/load of %s failed: %s"
                                         % (name, str(exc).splitlines()[0][:200])) from exc

        sample = torch.randn(self.input_shape)
        self._forward = pieces.convert_model(model, sample, convert)
        try:
            result = validate(model, self._forward, sample, "fp32")
        except ValidationError as exc:
            raise BackendUnavailable("onnxruntime does not reproduce PyTorch: %s" % exc) from exc
        self.info["onnxruntime"] = ort.__version__
        self.info["pieces"] = len(getattr(self._forward, "pieces", {})) or 1
        self.info["validation"] = "agreement %.5f, relative error %.2g" % (
            result.agreement, result.relative_error)

    def forward(self, batch):
        if tuple(batch.shape) != self.input_shape:
            raise ValueError("onnxruntime backend built for %s, got %s"
                             % (self.input_shape, tuple(batch.shape)))
        return self._forward(batch)
