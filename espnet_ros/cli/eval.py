"""``espnet-ros eval``: class / category mIoU of a model on a dataset split, reports, exports.

Under ``torchrun`` each process scores its share of the frames, the confusion matrices are
summed, and rank 0 writes the report (``world_size`` and ``images``, the frames scored in all)."""
import json
import sys
from pathlib import Path

from . import CommandError
from .predict import parse_size


def add_parser(sub):
    p = sub.add_parser("eval", help="mIoU of a model on a dataset split (JSON, Markdown, PNG)")
    p.add_argument("--model", help="zoo name or checkpoint file of espnet-ros train; default: the "
                                   "entry stored in --weights")
    p.add_argument("--weights", help="checkpoint file instead of the published weights")
    p.add_argument("--dataset", required=True, help="cityscapes, mapillary, camvid or folder")
    p.add_argument("--data-root", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", default="val", help="split to evaluate (default: val)")
    p.add_argument("--target", choices=("cityscapes", "native"),
                   help="mapillary only: map to the Cityscapes classes (default) or keep Vistas'")
    p.add_argument("--out", type=Path, help="report folder (default: out/eval/MODEL_DATASET_SPLIT)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--size", type=parse_size, help="model input WIDTHxHEIGHT (default: native)")
    p.add_argument("--limit", type=int, help="evaluate the first N frames only")
    p.add_argument("--backend", help="inference backend (default: torch for fp32, openvino for "
                                     "bf16/int8)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp32")
    p.add_argument("--calibration", type=Path, metavar="FILE",
                   help="bf16/int8: calibration file (or folder) of espnet-ros calibrate")
    p.add_argument("--ignore-gate", action="store_true",
                   help="evaluate a bf16/int8 model even though it failed the accuracy gate")
    p.add_argument("--export-cityscapes", type=Path, metavar="DIR",
                   help="also write Cityscapes submission files (labelIds, 2048x1024) to DIR; "
                        "a split without ground truth (test) is exported, not scored")
    p.add_argument("--no-plot", action="store_true", help="skip the confusion-matrix PNG")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def load_segmenter(args):
    from ..inference import Segmenter
    from ..inference.backends import BackendUnavailable
    from ..models import WeightsError
    from ..models.registry import register_checkpoint

    name = args.model
    backend = args.backend or ("openvino" if args.precision in ("bf16", "int8") else "torch")
    options = {}
    if args.calibration:
        options["calibration_file"] = str(args.calibration)
    if args.ignore_gate:
        options["enforce_gate"] = False
    try:
        if name is None:
            if not args.weights:
                raise CommandError("give --model NAME, or --weights with a checkpoint of espnet-ros train")
            name = register_checkpoint(args.weights, replace=True).name
        return Segmenter.from_zoo(name, weights=args.weights, device=args.device,
                                  input_size=args.size or "native", backend=backend,
                                  precision=args.precision, fallback=False,
                                  backend_options=options)
    except (KeyError, WeightsError, ValueError) as exc:
        raise CommandError(str(exc).strip('"')) from exc
    except BackendUnavailable as exc:  # no silent fallback: the report names what ran
        raise CommandError(str(exc)) from exc


def load_dataset(args):
    from ..data import build_dataset

    options = {}
    if args.target:
        if args.dataset != "mapillary":
            raise CommandError("--target applies to --dataset mapillary only")
        options["target"] = args.target
    if args.export_cityscapes:
        options["require_labels"] = False
    try:
        return build_dataset(args.dataset, args.data_root, args.split, limit=args.limit, **options)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise CommandError(str(exc)) from exc


def run(args):
    from ..training import distributed
    from ..training.evaluate import evaluate
    from ..training.export import CityscapesExporter, export_cityscapes
    from ..training.report import markdown, write_report

    world = distributed.setup(args.device)
    if world.distributed:
        args.device = str(world.device)  # cuda:LOCAL_RANK
    segmenter = load_segmenter(args)
    dataset = load_dataset(args)
    progress = not args.no_progress and world.main
    exporter = None
    if args.export_cityscapes:
        try:
            exporter = CityscapesExporter(segmenter.entry, dataset, args.export_cityscapes)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not dataset.has_labels:
            if world.distributed:
                raise CommandError("exporting a split without ground truth runs in one process")
            written = export_cityscapes(segmenter, dataset, args.export_cityscapes, progress)
            print("wrote %d submission file(s) to %s (no ground truth in %s: not scored)"
                  % (len(written), args.export_cityscapes, args.split))
            return 0
    try:
        report = evaluate(segmenter, dataset, progress=progress, on_prediction=exporter,
                          world=world if world.distributed else None)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    distributed.teardown(world)
    if not world.main:  # each process wrote its own frames' submission files, if asked
        return 0
    info = dict(segmenter.backend.info) if segmenter.backend is not None else {}
    extra = {"weights": str(args.weights) if args.weights else "published",
             "backend": segmenter.backend_name, "precision": segmenter.precision,
             "gate": info.get("gate", "not applicable (fp32)" if segmenter.precision == "fp32"
                              else "none"),
             "world_size": world.size, "command": "espnet-ros " + " ".join(sys.argv[1:])}
    out = args.out or Path("out") / "eval" / ("%s_%s_%s" % (segmenter.entry.name, dataset.kind, args.split))
    paths = write_report(report, out, extra, plot=not args.no_plot)
    print(markdown(report), end="")
    print("backend %s, precision %s; gate: %s" % (extra["backend"], extra["precision"],
                                                  extra["gate"]))
    if exporter:
        print("wrote %d submission file(s) to %s%s" % (len(exporter.written), args.export_cityscapes,
                                                     " (rank 0; every process wrote its own frames)"
                                                     if world.distributed else ""))
    print("reports: %s" % json.dumps({k: str(v) for k, v in paths.items()}))
    return 0
