"""``espnet-ros calibrate``: an int8 (or bf16) model calibrated on your frames, gated, cached.

Writes ``OUT/calibration.json`` (the calibration and gate frames and their digests) and the
calibrated model keyed by weights, input size, frames and library versions in ``OUT``. Exit
code 0 when the model passed the accuracy gate, 1 when it was refused (the refusal is cached
too, so the node falls back at once instead of re-running the gate).
"""
from pathlib import Path

from . import CommandError
from .predict import parse_size

DEFAULT_GATE_SPLIT = {"camvid": "test"}   # otherwise "val"


def add_parser(sub):
    p = sub.add_parser("calibrate", help="int8/bf16 model calibrated on your frames, behind the "
                                         "accuracy gate (for --precision and the node)")
    p.add_argument("--model", required=True, help="zoo name")
    p.add_argument("--weights", help="checkpoint file instead of the published weights")
    p.add_argument("--precision", choices=("int8", "bf16"), default="int8")
    p.add_argument("--dataset", required=True, choices=("camvid", "cityscapes", "folder", "images"),
                   help="calibration frames: a dataset split, or 'images' (a folder of images)")
    p.add_argument("--data-root", required=True, type=Path, help="dataset or image folder")
    p.add_argument("--split", default="train", help="dataset split (default: train)")
    p.add_argument("--frames", type=int, default=32,
                   help="calibration frames, spread evenly over the split (default: 32)")
    p.add_argument("--extra-images", type=Path, action="append", default=[], metavar="DIR",
                   help="more calibration frames: every image in DIR, after --frames of "
                        "--dataset (repeatable; e.g. the Cityscapes samples with CamVid train)")
    p.add_argument("--gate-dataset", choices=("camvid", "cityscapes", "folder", "images"),
                   help="frames the gate compares fp32 and the calibrated model on (default: "
                        "--dataset; required for --dataset images)")
    p.add_argument("--gate-root", type=Path, help="default: --data-root")
    p.add_argument("--gate-split", help="default: test for camvid, val otherwise")
    p.add_argument("--gate-frames", type=int, help="gate frames (default: all of the split)")
    p.add_argument("--size", type=parse_size, help="model input WIDTHxHEIGHT (default: native)")
    p.add_argument("--out", required=True, type=Path, help="folder for calibration.json and the "
                                                           "cached models")
    p.set_defaults(func=run)


def frame_sets(args):
    from ..inference.calibration import FrameSet
    calibration = None
    if args.precision == "int8":
        calibration = FrameSet(args.dataset, str(args.data_root),
                               None if args.dataset == "images" else args.split, args.frames)
        if args.extra_images:
            calibration = (calibration,) + tuple(FrameSet("images", str(folder))
                                                 for folder in args.extra_images)
    kind = args.gate_dataset or args.dataset
    root = args.gate_root or args.data_root
    if kind == "images" and args.gate_root is None and args.gate_dataset is None:
        raise CommandError("--dataset images has no held-out split: give --gate-dataset and "
                           "--gate-root (frames the gate compares fp32 and %s on)"
                           % args.precision)
    split = None if kind == "images" else (args.gate_split or DEFAULT_GATE_SPLIT.get(kind, "val"))
    return calibration, FrameSet(kind, str(root), split, args.gate_frames)


def print_quantization(report):
    from ..inference.calibration.sensitivity import BlockSensitivity, format_table
    if not report:
        return
    table = [BlockSensitivity(*row) for row in report.get("sensitivity", [])]
    kept = report.get("fp32 blocks", [])
    if table:
        print("per-block sensitivity (only that block int8, on the calibration frames):")
        print(format_table(table, kept))
    if "tuning agreement" in report:
        print("blocks kept fp32: %s (agreement on the calibration frames %.2f %% min / %.2f %% "
              "mean)" % (", ".join(kept) or "none", 100 * report["tuning agreement"][0],
                         100 * report["tuning agreement"][1]))


def run(args):
    import torch

    from ..inference.backends import BackendUnavailable, create_backend
    from ..inference.calibration import CalibrationSpec, read_frames, write_spec
    from ..inference.calibration.frames import describe, read_frame_sets
    from ..models import WeightsError, create_model, zoo
    calibration, gate = frame_sets(args)
    try:
        random_weights = not args.weights and not zoo.get(args.model).weights_file
    except KeyError as exc:
        raise CommandError(str(exc).strip('"')) from exc
    try:
        gate_frames = read_frames(gate)
        calibration_frames = read_frame_sets(calibration) if calibration else None
    except (ValueError, OSError, ImportError) as exc:
        raise CommandError(str(exc)) from exc
    spec = write_spec(args.out, CalibrationSpec(
        args.precision, gate, gate_frames.sha256, calibration,
        calibration_frames.sha256 if calibration_frames else None, args.model))
    print("calibration: %s" % (describe(calibration) if calibration else "none (bf16)"))
    print("gate: %s, %d frame(s)%s" % (gate.describe(), len(gate_frames.images),
                                       ", with labels (mIoU scored)" if gate_frames.dataset
                                       else ""))
    try:
        if random_weights:
            # No published weights: the seed the benchmarks use, so that they find this model.
            torch.manual_seed(0)
            print("%s has no published weights: random weights (seed 0), speed studies only"
                  % args.model)
        model, entry = create_model(args.model, weights=args.weights, pretrained=not random_weights)
        width, height = args.size or entry.input_size
        backend = create_backend(model, entry, (1, 3, height, width), "openvino", "cpu",
                                 args.precision, fallback=False,
                                 calibration_file=str(spec.path), enforce_gate=False)
    except (KeyError, WeightsError, ValueError) as exc:
        raise CommandError(str(exc).strip('"')) from exc
    except BackendUnavailable as exc:
        raise CommandError(str(exc)) from exc
    print("calibrated model: %s" % backend.info.get("calibrated model"))
    if "int8 convolutions" in backend.info:
        print("int8 convolutions: %s" % backend.info["int8 convolutions"])
    print_quantization(getattr(backend, "quantization", {}))
    print("gate %s" % backend.gate.summary())
    print("written: %s" % spec.path)
    if backend.refusal:
        print("the node and eval refuse this %s model (they fall back to fp32 with a warning): "
              "%s" % (args.precision, backend.refusal))
        return 1
    return 0
