"""OpenVINO backend (CPU): fp32, bf16 and int8 (NNCF post-training quantization), fixed shape.

The model goes to OpenVINO through the project's ONNX export (ENet in pieces, as for
onnxruntime). fp32 is validated against eager PyTorch like every backend. bf16 and int8 need a
calibration file from ``espnet-ros calibrate`` (option ``calibration_file``): the calibrated
model and its accuracy-gate result are cached beside it (backends.openvino_lowp), and a model
that failed the gate is refused with its figures, so the fallback chain serves fp32 instead.
"""
import importlib
import os
import tempfile
from pathlib import Path

import torch

from . import pieces
from .base import Backend, BackendUnavailable, register
from .onnxruntime_backend import export_onnx
from .validate import ValidationError, validate

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: unquantized ops stay fp32
CAPABILITY = {"bf16": "BF16", "int8": "INT8"}


def _openvino():
    return importlib.import_module("openvino")


def cpu_capabilities():
    """OpenVINO's optimization capabilities of this CPU (e.g. FP32, BF16, INT8): the one place
    the backend asks the machine, so tests can take the branch this CPU does not."""
    return tuple(_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def onnx_to_openvino(module, inputs):
    """An ov.Model of ``module`` at the shapes of ``inputs`` (via the project's ONNX export)."""
    ov = _openvino()
    data = export_onnx(module, inputs)
    handle, path = tempfile.mkstemp(suffix=".onnx")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        return ov.Core().read_model(path)
    finally:
        os.unlink(path)


def convert_pieces(model, sample):
    """{piece name: ov.Model} of ``model`` (one "model" piece unless it needs pieces)."""
    converted = {}

    def convert(name, module, inputs):
        converted[name] = onnx_to_openvino(module, inputs)
        return module  # the eager piece keeps the wrapper running during conversion

    with torch.no_grad():
        pieces.convert_model(model, sample, convert)
    return converted


def nhwc_logits(ov_model):
    """``ov_model`` with its one 4-D output transposed to NHWC in the graph, else None.

    The labels' argmax over NCHW logits strides across the class planes; over NHWC it reads
    each pixel's classes together (measured, p2q8 1024x512, 2 threads: forward + argmax 280 ms
    NCHW with torch.argmax, 205-233 ms with a running maximum over planes, 185 ms NHWC, the
    same as an in-graph TopK, 171-187 ms, which would leave no logits for the confidence)."""
    ov = _openvino()
    results = ov_model.get_results()
    if len(results) != 1 or results[0].get_output_partial_shape(0).rank.get_length() != 4:
        return None
    import numpy as np
    from openvino import opset13
    source = results[0].input_value(0)
    order = opset13.constant(np.array([0, 2, 3, 1], np.int64))
    transposed = opset13.transpose(source, order)
    return ov.Model([transposed.output(0)], ov_model.get_parameters(), ov_model.get_friendly_name())


class CompiledPiece:
    """One compiled OpenVINO model; the output is the request's buffer (reused next call).
    ``nhwc``: the model returns NHWC logits, handed on as an NCHW view (channels_last)."""

    def __init__(self, compiled, nhwc=False):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.outputs = len(compiled.outputs)
        self.nhwc = nhwc

    def __call__(self, *inputs):
        self.request.infer([t.detach().cpu().contiguous().numpy() for t in inputs])
        outs = [torch.from_numpy(self.request.get_output_tensor(i).data)
                for i in range(self.outputs)]
        if self.nhwc:
            outs[0] = outs[0].permute(0, 3, 1, 2)
        return outs[0] if len(outs) == 1 else tuple(outs)


def compile_pieces(model, ov_models, precision, threads, sample):
    """A forward callable running ``ov_models`` (pieces of ``model``) with ``precision``."""
    ov = _openvino()
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": int(threads)}
    compiled = {}
    for name, ov_model in ov_models.items():
        nhwc = nhwc_logits(ov_model) if len(ov_models) == 1 else None
        compiled[name] = CompiledPiece(core.compile_model(nhwc or ov_model, "CPU", config),
                                       nhwc is not None)

    def use(name, module, inputs):
        return compiled[name]

    return pieces.convert_model(model, sample, use), compiled


def low_precision_ops(compiled_piece):
    """(ops running in u8/i8, convolutions) of a compiled model, from its runtime graph."""
    low, convs = 0, 0
    def text(info, key):
        return str(info[key].astype(str)) if key in info else ""

    for op in compiled_piece.compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        precision, layer = text(info, "runtimePrecision"), text(info, "layerType")
        if "Convolution" in layer or "Deconvolution" in layer:
            convs += 1
            low += precision in ("u8", "i8")
    return low, convs


@register
class OpenVinoBackend(Backend):
    """Options: ``threads`` (default: torch's thread count), ``calibration_file`` (bf16/int8:
    the file or folder written by espnet-ros calibrate), ``enforce_gate`` (default True;
    False builds a model that failed the gate anyway, for speed studies only)."""

    name = "openvino"
    fixed_shape = True

    @classmethod
    def check(cls, device, precision):
        if torch.device(device).type != "cpu":
            return "this backend runs on CPU only"
        if precision not in HINTS:
            return "%s is not supported (fp32, bf16, int8)" % precision
        try:
            capabilities = cpu_capabilities()
        except Exception as exc:  # ImportError, or a broken install
            return "openvino is not importable: %s" % str(exc).splitlines()[0][:100]
        if precision in CAPABILITY and CAPABILITY[precision] not in capabilities:
            return "this CPU has no fast %s kernels (OpenVINO capabilities: %s)" % (
                precision, ", ".join(capabilities))
        return None

    def _build(self, model):
        ov = _openvino()
        model = model.eval()
        threads = self.options.get("threads") or torch.get_num_threads()
        sample = torch.randn(self.input_shape)
        self.info["openvino"] = ov.__version__
        if self.precision == "fp32":
            try:
                ov_models = convert_pieces(model, sample)
            except Exception as exc:  # exporter and frontend raise many types
                raise BackendUnavailable("OpenVINO conversion failed: %s"
                                         % str(exc).splitlines()[0][:200]) from exc
        else:
            ov_models = self._low_precision_models(model, threads)
        self._forward, self.compiled = compile_pieces(model, ov_models, self.precision, threads,
                                                      sample)
        self.info["pieces"] = len(ov_models)
        if self.precision == "int8":
            counts = [low_precision_ops(piece) for piece in self.compiled.values()]
            self.info["int8 convolutions"] = "%d of %d" % (sum(c[0] for c in counts),
                                                          sum(c[1] for c in counts))
        if self.precision == "fp32":
            try:
                result = validate(model, self._forward, sample, "fp32")
            except ValidationError as exc:
                raise BackendUnavailable("OpenVINO does not reproduce PyTorch: %s" % exc) from exc
            self.info["validation"] = "agreement %.5f, relative error %.2g" % (
                result.agreement, result.relative_error)

    def _low_precision_models(self, model, threads):
        from . import openvino_lowp
        path = self.options.get("calibration_file")
        if not path:
            raise BackendUnavailable(
                "%s needs a calibration file: run espnet-ros calibrate --precision %s ... and "
                "pass it (backend option calibration_file, node parameter calibration_file)"
                % (self.precision, self.precision))
        try:
            calibrated = openvino_lowp.calibrated_models(model, self.entry, self.input_shape,
                                                         self.precision, Path(path), threads)
        except (ValueError, OSError) as exc:
            raise BackendUnavailable("%s calibration unusable: %s" % (self.precision, exc)) \
                from exc
        gate = calibrated.gate
        self.gate = gate
        self.info["gate"] = gate.summary()
        self.info["calibrated model"] = "%s (%s)" % (calibrated.how, calibrated.path)
        self.quantization = calibrated.quantization
        if self.precision == "int8":
            self.info["fp32 blocks"] = ", ".join(calibrated.quantization.get("fp32 blocks")
                                                 or []) or "none"
        if not gate.passed and self.options.get("enforce_gate", True):
            raise BackendUnavailable("%s refused by the accuracy gate (%s): %s"
                                     % (self.precision, calibrated.path, gate.summary()))
        return calibrated.models

    def forward(self, batch):
        if tuple(batch.shape) != self.input_shape:
            raise ValueError("openvino backend built for %s, got %s"
                             % (self.input_shape, tuple(batch.shape)))
        return self._forward(batch)
