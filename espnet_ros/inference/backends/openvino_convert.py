"""OpenVINO conversion and compilation: PyTorch -> ov.Model (through the project's ONNX export,
ENet in pieces as for onnxruntime), and ov.Models -> a forward callable on the CPU.

Used by the openvino backend (fp32) and by openvino_lowp (bf16 / int8 calibration and gate).
OpenVINO itself is imported on first use only.
"""
import importlib
import os
import tempfile

import torch

from . import pieces
from .onnxruntime_backend import export_onnx

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: unquantized ops stay fp32


def import_openvino():
    """The openvino module, imported on first use (it takes a second)."""
    return importlib.import_module("openvino")


def onnx_to_openvino(module, inputs):
    """An ov.Model of ``module`` at the shapes of ``inputs`` (via the project's ONNX export)."""
    ov = import_openvino()
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
    ov = import_openvino()
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
    ov = import_openvino()
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


def argmax_labels(ov_model, items, threads):
    """Labels (argmax over the classes) of a single-piece ``ov_model`` compiled in fp32, for each
    network input in ``items``: what the int8 sensitivity trials compare."""
    ov = import_openvino()
    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": int(threads)})
    request = compiled.create_infer_request()
    labels = []
    for item in items:
        request.infer([item])
        labels.append(request.get_output_tensor(0).data.argmax(1))
    return labels
