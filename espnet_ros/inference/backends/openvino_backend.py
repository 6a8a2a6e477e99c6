"""OpenVINO backend (CPU): fp32, bf16 and int8 (NNCF post-training quantization), fixed shape.

The model goes to OpenVINO through the project's ONNX export (ENet in pieces, as for
onnxruntime), converted and compiled by backends.openvino_convert. fp32 is validated against
eager PyTorch like every backend. bf16 and int8 need a calibration file from ``espnet-ros
calibrate`` (option ``calibration_file``): the calibrated model and its accuracy-gate result
are cached beside it (backends.openvino_lowp), and a model that failed the gate is refused
with its figures, so the fallback chain serves fp32 instead.
"""
from pathlib import Path

import torch

from . import openvino_lowp
from .base import Backend, BackendUnavailable, register, runtime_check
from .openvino_convert import (
    HINTS,
    compile_pieces,
    convert_pieces,
    import_openvino,
    low_precision_ops,
)
from .validate import ValidationError, validate

CAPABILITY = {"bf16": "BF16", "int8": "INT8"}


def cpu_capabilities():
    """OpenVINO's optimization capabilities of this CPU (e.g. FP32, BF16, INT8): the one place
    the backend asks the machine, so tests can take the branch this CPU does not."""
    return tuple(import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@register
class OpenVinoBackend(Backend):
    """Options: ``threads`` (default: torch's thread count), ``calibration_file`` (bf16/int8:
    the file or folder written by espnet-ros calibrate), ``enforce_gate`` (default True;
    False builds a model that failed the gate anyway, for speed studies only)."""

    name = "openvino"
    fixed_shape = True
    refusal = None        # why a bf16 / int8 model must not serve (built only with enforce_gate=False)
    refusal_cause = None  # the same in a few words, for reports

    @classmethod
    def check(cls, device, precision):
        reason = runtime_check(device, precision, "cpu", tuple(HINTS), ("openvino",))
        if reason:
            return reason
        try:
            capabilities = cpu_capabilities()
        except Exception as exc:  # a broken install
            return "openvino cannot query the CPU: %s" % str(exc).splitlines()[0][:100]
        if precision in CAPABILITY and CAPABILITY[precision] not in capabilities:
            return "this CPU has no fast %s kernels (OpenVINO capabilities: %s)" % (
                precision, ", ".join(capabilities))
        return None

    def _build(self, model):
        ov = import_openvino()
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
            low, convs = sum(c[0] for c in counts), sum(c[1] for c in counts)
            self.info["int8 convolutions"] = "%d of %d" % (low, convs)
            if low == 0 and convs and not self.refusal:
                # The gate passed only because the search kept every quantized block in fp32:
                # serving it as int8 would put a false precision in the diagnostics.
                cause = "no convolution runs in int8 (0 of %d)" % convs
                self._refuse("int8 refused: %s, so this is the fp32 model; use bf16, or "
                             "calibrate on other frames" % cause, cause)
        if self.precision == "fp32":
            try:
                result = validate(model, self._forward, sample, "fp32")
            except ValidationError as exc:
                raise BackendUnavailable("OpenVINO does not reproduce PyTorch: %s" % exc) from exc
            self.info["validation"] = "agreement %.5f, relative error %.2g" % (
                result.agreement, result.relative_error)

    def _low_precision_models(self, model, threads):
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
        if not gate.passed:
            self._refuse("%s refused by the accuracy gate (%s): %s"
                         % (self.precision, calibrated.path, gate.summary()), "accuracy gate")
        return calibrated.models

    def _refuse(self, reason, cause):
        """Refuses a calibrated model (``refusal``: why, ``refusal_cause``: in a few words); kept
        only with ``enforce_gate=False``."""
        self.refusal, self.refusal_cause = reason, cause
        if self.options.get("enforce_gate", True):
            raise BackendUnavailable(reason)

    def forward(self, batch):
        if tuple(batch.shape) != self.input_shape:
            raise ValueError("openvino backend built for %s, got %s"
                             % (self.input_shape, tuple(batch.shape)))
        return self._forward(batch)
