"""bf16 / int8 OpenVINO models built from a calibration file, gated, and cached beside it.

Key (as the engine cache's): weights sha256, model arguments, input shape, precision, the
quantization recipe, the calibration and gate frames' sha256, and the torch (ONNX export),
OpenVINO and NNCF versions. A cached file holds every piece's IR and the gate result, so a
node start with a cached model neither re-reads the frames nor re-runs the gate.
"""
import json
import logging
import os
import time
import zipfile
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import torch

from ...metrics import label_agreement
from ..artifact_cache import ArtifactCache, model_args, weights_sha256
from ..calibration import gate as gate_module
from ..calibration import load_spec, run_gate, sensitivity
from ..calibration.frames import describe, read_frame_sets, spread
from ..calibration.gate import GateResult
from ..preprocess import Preprocessor
from .openvino_convert import argmax_labels, compile_pieces, convert_pieces
from .pieces import record_piece_inputs

LOG = logging.getLogger("espnet_ros")
FORMAT_VERSION = 2
SUFFIX = ".ovz"
# Measured on p2q8 (docs/backends.md, "int8: per-block sensitivity"): quantizing the HFF adds, the
# concatenations and the BatchNorms after them (NNCF's CPU default) cost far more labels than
# the convolutions (79 % -> 91 % pixel agreement on 8 CamVid val frames when only convolution
# inputs are quantized); asymmetric activations (MIXED) beat symmetric ones.
UNQUANTIZED_TYPES = ("Add", "BatchNormInference", "Concat", "Multiply")
SENSITIVITY_FRAMES = 16   # calibration frames each trial quantization collects statistics on
TUNING_FRAMES = 16        # calibration frames the trials' agreement is measured on
# The trials aim this far above both gate bounds: the gate's frames are others, and more. On the
# CamVid model its test frames lost about 2.2x the pixels the trials did: 0.005 kept 6 blocks
# fp32 and missed the gate (98.99 %), 0.006 kept 8 (99.14 %, 44 of 85 convolutions int8),
# 0.008 kept 16 (99.57 %, 12 int8).
TUNING_MARGIN = 0.006
MAX_FP32_SHARE = 0.75     # of the blocks; past it, int8 measured no faster than fp32
RECIPE = {"tool": "nncf.quantize", "preset": "mixed", "unquantized": list(UNQUANTIZED_TYPES),
          "fp32 blocks": "per-block sensitivity", "target": "gate: all pixels and a frame floor",
          "sensitivity frames": SENSITIVITY_FRAMES,
          "tuning frames": TUNING_FRAMES, "tuning margin": TUNING_MARGIN,
          "max fp32 share": MAX_FP32_SHARE}


class Calibrated(NamedTuple):
    models: dict        # piece name -> ov.Model
    gate: GateResult
    how: str = "built"  # or "hit" (from the cache)
    path: str = ""      # the calibration file
    quantization: dict = {}  # int8: fp32 blocks, the sensitivity table, the trials


class CalibrationCache(ArtifactCache):
    what = "calibration cache"
    noun = "calibrated model"


def _version(distribution):
    try:
        from importlib.metadata import version  # does not import the (slow) package
    except ImportError:  # Python < 3.8
        return "unknown"
    try:
        return version(distribution)
    except Exception:  # not installed
        return "absent"


def cache_fields(weights, args, input_shape, precision, calibration_sha, gate_sha, versions):
    return OrderedDict([
        ("format", FORMAT_VERSION), ("runtime", "openvino"),
        ("weights_sha256", weights), ("model_args", args),
        ("input_shape", [int(v) for v in input_shape]), ("precision", precision),
        ("recipe", RECIPE if precision == "int8" else None),
        ("calibration_sha256", calibration_sha), ("gate_sha256", gate_sha),
        ("torch", str(versions["torch"])), ("openvino", str(versions["openvino"])),
        ("nncf", str(versions["nncf"]) if precision == "int8" else None),
    ])


def library_versions():
    return {"torch": torch.__version__, "openvino": _version("openvino"), "nncf": _version("nncf")}


def save(calibrated, path):
    import openvino as ov
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pieces.json", json.dumps(list(calibrated.models)))
        archive.writestr("gate.json", json.dumps(calibrated.gate.to_json()))
        archive.writestr("quantization.json", json.dumps(calibrated.quantization))
        for name, model in calibrated.models.items():
            with _tmpdir() as folder:
                xml = "%s/%s.xml" % (folder, name)
                ov.save_model(model, xml, compress_to_fp16=False)
                archive.write(xml, name + ".xml")
                archive.write(xml[:-4] + ".bin", name + ".bin")


def load(path):
    import openvino as ov
    core = ov.Core()
    with zipfile.ZipFile(str(path)) as archive:
        names = json.loads(archive.read("pieces.json"))
        gate = GateResult.from_json(json.loads(archive.read("gate.json")))
        quantization = json.loads(archive.read("quantization.json"))
        models = OrderedDict()
        for name in names:
            weights = np.frombuffer(archive.read(name + ".bin"), np.uint8).copy()
            models[name] = core.read_model(archive.read(name + ".xml").decode(),
                                           ov.Tensor(weights))
    return Calibrated(models, gate, "hit", quantization=quantization)


def _tmpdir():
    import tempfile
    return tempfile.TemporaryDirectory()


def _frames(frame_set, expected_sha, what):
    frames = read_frame_sets(frame_set)
    if frames.sha256 != expected_sha:
        raise ValueError("the %s frames (%s) changed since espnet-ros calibrate wrote the file "
                         "(sha256 %s..., now %s...): run calibrate again"
                         % (what, describe(frame_set), expected_sha[:12], frames.sha256[:12]))
    return frames


def import_nncf():
    """nncf with its usage telemetry off: without a consent file it would otherwise send
    events to a web analytics service from every process that quantizes (a robot's or CI's
    included). NNCF_CI is NNCF's own switch for that; a value the user set is kept."""
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    return nncf


def quantize(nncf, ov_model, items, ignored_patterns=()):
    """``ov_model`` with its convolution inputs in int8, calibrated on ``items``, except the ops
    matching ``ignored_patterns``."""
    scope = nncf.IgnoredScope(patterns=list(ignored_patterns), types=list(UNQUANTIZED_TYPES),
                              validate=False)
    return nncf.quantize(ov_model, nncf.Dataset(items), subset_size=len(items),
                         preset=nncf.QuantizationPreset.MIXED, ignored_scope=scope)


def choose_fp32(nncf, ov_model, items, threads):
    """The ``sensitivity.Choice`` of blocks that stay fp32 (trials on subsets of ``items``)."""
    subset = [items[i] for i in spread(len(items), SENSITIVITY_FRAMES)]
    tuning = [items[i] for i in spread(len(items), TUNING_FRAMES)]
    reference = argmax_labels(ov_model, tuning, threads)

    def measure(patterns):
        got = argmax_labels(quantize(nncf, ov_model, subset, patterns), tuning, threads)
        return label_agreement(reference, got)

    blocks = sensitivity.model_blocks(op.get_friendly_name() for op in ov_model.get_ordered_ops())
    return sensitivity.choose_fp32_blocks(
        blocks, lambda block: measure([sensitivity.all_but_pattern(block)]),
        lambda kept: measure([sensitivity.block_pattern(b) for b in kept]),
        lambda low, mean: gate_module.reaches(low, mean, TUNING_MARGIN),
        int(MAX_FP32_SHARE * len(blocks)))


class LazyInputs:
    """The network inputs of ``images``, preprocessed when read: 100 calibration frames at
    1024x512 would otherwise hold 630 MB for the whole calibration."""

    def __init__(self, images, to_input):
        self.images = images
        self.to_input = to_input

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.to_input(self.images[index])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def quantize_pieces(model, ov_models, images, to_batch, threads=1):
    """NNCF post-training quantization of each piece on the inputs it sees for ``images``
    (``to_batch(image)``: the network input): ({piece: ov.Model}, report). A single-piece model
    keeps in fp32 the blocks the per-block sensitivity trials choose (the report says which,
    with the table); pieces (ENet) are quantized whole."""
    nncf = import_nncf()
    if len(ov_models) == 1:
        name, ov_model = next(iter(ov_models.items()))
        items = LazyInputs(images, lambda image: to_batch(image).numpy())
        choice = choose_fp32(nncf, ov_model, items, threads)
        report = {"fp32 blocks": list(choice.kept),
                  "tuning agreement": list(choice.agreement),
                  "sensitivity": [row.to_json() for row in choice.table],
                  "trials": [[list(kept), list(result)] for kept, result in choice.steps]}
        patterns = [sensitivity.block_pattern(b) for b in choice.kept]
        return OrderedDict([(name, quantize(nncf, ov_model, items, patterns))]), report
    recorded = record_piece_inputs(model, [to_batch(image) for image in images])
    quantized = OrderedDict()
    for name, ov_model in ov_models.items():
        items = [inputs[0].numpy() if len(inputs) == 1 else [t.numpy() for t in inputs]
                 for inputs in recorded[name]]
        quantized[name] = quantize(nncf, ov_model, items)
    return quantized, {"fp32 blocks": []}


def build(model, entry, input_shape, precision, spec, threads):
    """Calibrates (int8) and gates a model: ``Calibrated`` with the gate result."""
    start = time.perf_counter()
    size = (int(input_shape[3]), int(input_shape[2]))
    sample = torch.randn(input_shape)
    ov_models = convert_pieces(model, sample)
    quantization = {}
    preprocess = Preprocessor(entry.normalization, size)
    if precision == "int8":
        if spec.calibration is None:
            raise ValueError("%s names no calibration frames (int8 needs them)" % spec.path)
        frames = _frames(spec.calibration, spec.calibration_sha256, "calibration")
        ov_models, quantization = quantize_pieces(
            model, ov_models, frames.images, lambda image: preprocess([image]).clone(), threads)
    gate_frames = _frames(spec.gate, spec.gate_sha256, "gate")
    forward, _ = compile_pieces(model, ov_models, precision, threads, sample)
    gate = run_gate(model.eval(), forward, preprocess, gate_frames.images, entry,
                    gate_frames.dataset)
    LOG.info("%s model for %s at %dx%d built in %.0f s; gate %s", precision, entry.name,
             size[0], size[1], time.perf_counter() - start, gate.summary())
    return Calibrated(ov_models, gate, quantization=quantization)


def calibrated_models(model, entry, input_shape, precision, path, threads):
    """The gated ``Calibrated`` model for (model, input shape, precision) from the calibration
    file at ``path``: cached, else built and cached (raises ValueError / OSError)."""
    spec = load_spec(path)
    if spec.precision != precision:
        raise ValueError("%s was made for %s, not %s" % (spec.path, spec.precision, precision))
    fields = cache_fields(weights_sha256(model), model_args(model, entry), input_shape,
                          precision, spec.calibration_sha256, spec.gate_sha256,
                          library_versions())
    cache = CalibrationCache(spec.folder, SUFFIX)
    calibrated, how = cache.get_or_build(
        fields, lambda: build(model, entry, input_shape, precision, spec, threads), save, load)
    return calibrated._replace(how=how, path=str(spec.path))


__all__ = ["Calibrated", "build", "cache_fields", "calibrated_models"]
