"""``espnet-ros bench``: a group of benchmarks.

- ``bench system`` (also plain ``bench``): parameters, fp32/fp16/engine size, GMACs, FPS,
  latency, memory, utilization and power per model, backend and resolution, the GPU frequency
  sweep; Markdown, JSON, CSV and PNG reports.
- ``bench cpu``: image -> labels of the original code against the default path and each
  backend / precision (with first-label times and gate figures), and plain eager PyTorch
  against each CPU optimization step, in one run.
- Sibling modules listed in SIBLINGS (``bench_node.py``: ``bench node``, ``bench_cameras.py``:
  ``bench cameras``) add their own
  sub-subcommand with ``add_parser(bench_subparsers)``; a missing one is skipped.
"""
import importlib
from pathlib import Path

from ..bench.cpu import STEP_SEQUENCE
from . import CommandError
from .predict import parse_size

SIBLINGS = ("bench_node", "bench_cameras")


def _csv(text):
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _sizes(text):
    return tuple(parse_size(v) for v in _csv(text))


def _system_command(args):
    """The command that reproduces a system run, rebuilt from the parsed values."""
    parts = ["espnet-ros bench system", "--models", ",".join(args.models),
             "--backends", ",".join(args.backends),
             "--sizes", ",".join("%dx%d" % s for s in args.sizes),
             "--iterations", str(args.iterations), "--warmup", str(args.warmup),
             "--device", args.device, "--precision", args.precision]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.torch_optimize != "default":
        parts += ["--torch-optimize", args.torch_optimize]
    if args.image:
        parts += ["--image", str(args.image)]
    if args.no_power:
        parts.append("--no-power")
    if args.gpu_freq_sweep:
        parts.append("--gpu-freq-sweep")
    if args.op_profile:
        parts.append("--op-profile")
    if args.no_utilization:
        parts.append("--no-utilization")
    elif args.utilization_interval != 0.2:
        parts += ["--utilization-interval", str(args.utilization_interval)]
    return " ".join(parts)


def _cpu_command(args):
    parts = ["espnet-ros bench cpu", "--model", args.model, "--size", "%dx%d" % args.size,
             "--rounds", str(args.rounds), "--iterations", str(args.iterations),
             "--threads", "'%s'" % ",".join(str(t) for t in args.threads)]
    if args.steps is not None:
        parts += ["--steps", ",".join(args.steps)]
    if args.no_compile:
        parts.append("--no-compile")
    if args.no_onnxruntime:
        parts.append("--no-onnxruntime")
    if args.study != "both":
        parts += ["--study", args.study]
    if args.models:
        parts += ["--models", ",".join(args.models)]
    for path in args.calibration:
        parts += ["--calibration", str(path)]
    if args.no_openvino:
        parts.append("--no-openvino")
    return " ".join(parts)


def add_system_arguments(p):
    from ..bench.system import DEFAULT_MODELS
    p.add_argument("--models", type=_csv, default=DEFAULT_MODELS,
                   help="comma-separated zoo names (default: %s)" % ",".join(DEFAULT_MODELS))
    p.add_argument("--backends", type=_csv, default=("available",),
                   help="comma-separated backends; 'available' (default) = all that run here")
    p.add_argument("--sizes", type=_sizes, default=((224, 224), (640, 360), (1024, 512),
                                                    (2048, 1024)),
                   help="comma-separated WIDTHxHEIGHT (default: 224x224,640x360,1024x512,"
                        "2048x1024)")
    p.add_argument("--iterations", type=int, default=30, help="timed frames per row")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames per row (>= 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    p.add_argument("--threads", type=int, help="torch intra-op threads for the whole run")
    p.add_argument("--torch-optimize", choices=("default", "max", "eager"), default="default",
                   help="torch backend CPU steps: default (fast start), max (+torch.compile), "
                        "eager")
    p.add_argument("--image", help="frame to resize to each resolution (default: a Cityscapes "
                                   "sample from $ESPNET_ROS_DATA, else synthetic)")
    p.add_argument("--eval", nargs="+", default=(), metavar="JSON",
                   help="eval.json files of espnet-ros eval (or a {model: mIoU} file): adds "
                        "the accuracy-vs-FPS plot")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="report folder")
    p.add_argument("--no-power", action="store_true", help="skip the power/energy columns")
    p.add_argument("--gpu-freq-sweep", action="store_true",
                   help="time every model again at several pinned GPU clocks, power included, "
                        "and report the frequency sensitivity (root)")
    p.add_argument("--utilization-interval", type=float, default=0.2, metavar="S",
                   help="seconds between CPU/GPU/memory utilization samples (default 0.2)")
    p.add_argument("--no-utilization", action="store_true",
                   help="do not sample CPU/GPU/memory utilization")
    p.add_argument("--op-profile", action="store_true",
                   help="CPU: also split each model's forward time by kind of op (torch "
                        "profiler), at 1024x512 when measured")
    p.add_argument("--no-plots", action="store_true")


def add_cpu_arguments(p):
    p.add_argument("--model", default="espnet-p2q8-cityscapes")
    p.add_argument("--size", type=parse_size, default=(1024, 512))
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median reported)")
    p.add_argument("--iterations", type=int, default=3, help="forwards per candidate per round")
    p.add_argument("--steps", type=_csv, default=None,
                   help="cumulative torch steps to measure, in order (default: %s)"
                        % ",".join(STEP_SEQUENCE))
    p.add_argument("--no-compile", action="store_true",
                   help="skip the torch.compile step (its first call takes up to a minute)")
    p.add_argument("--threads", type=lambda t: tuple(int(v) for v in _csv(t)), default=(1,),
                   help="thread counts to try on the last step (default: 1; '' for none)")
    p.add_argument("--no-onnxruntime", action="store_true")
    p.add_argument("--camvid-frames", type=int, default=4, help="CamVid frames for agreement")
    p.add_argument("--study", choices=("both", "labels", "steps"), default="both",
                   help="labels: image -> labels vs the original code; steps: forward per CPU "
                        "step; both (default)")
    p.add_argument("--models", type=_csv, default=None,
                   help="labels study: comma-separated zoo names (default: --model)")
    p.add_argument("--calibration", action="append", default=[], metavar="FILE",
                   help="labels study: a calibration file of espnet-ros calibrate (bf16/int8 "
                        "row for its model); repeat for several")
    p.add_argument("--no-openvino", action="store_true", help="labels study: no openvino rows")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="report folder")


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmarks: system (default), cpu, and siblings",
                       description="Without a benchmark name this runs 'bench system'; put "
                                   "options after the name when giving one.")
    add_system_arguments(p)
    p.set_defaults(func=run_system)
    bench_sub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    system = bench_sub.add_parser("system", help="system-level metrics per model and backend")
    add_system_arguments(system)
    system.set_defaults(func=run_system)
    cpu = bench_sub.add_parser("cpu", help="eager PyTorch vs each CPU optimization step")
    add_cpu_arguments(cpu)
    cpu.set_defaults(func=run_cpu)
    for name in SIBLINGS:
        try:
            module = importlib.import_module("%s.%s" % (__package__, name))
        except ImportError:
            continue
        module.add_parser(bench_sub)


def run_system(args):
    import torch

    from ..bench import report
    from ..bench.frames import system_frame
    from ..bench.system import SystemConfig
    from ..bench.system import run_system as run
    from ..models import zoo
    for name in args.models:
        try:
            zoo.get(name)
        except KeyError as exc:
            raise CommandError(str(exc).strip('"')) from exc
    if args.iterations < 1 or args.warmup < 1:
        raise CommandError("--iterations and --warmup must be at least 1")
    if args.utilization_interval <= 0:
        raise CommandError("--utilization-interval must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        image, image_name = system_frame(args.image)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    accuracy = report.load_accuracy(args.eval) if args.eval else None
    config = SystemConfig(models=args.models, backends=args.backends, sizes=args.sizes,
                          iterations=args.iterations, warmup=args.warmup, device=args.device,
                          precision=args.precision, power=not args.no_power,
                          gpu_sweep=args.gpu_freq_sweep, image=image, image_name=image_name,
                          torch_optimize=args.torch_optimize,
                          utilization=not args.no_utilization,
                          utilization_interval_s=args.utilization_interval,
                          op_profile=args.op_profile)
    try:
        result = run(config)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    result["command"] = _system_command(args)
    paths = report.write_reports(result, args.out, accuracy, plots=not args.no_plots)
    print()
    print(report.summary_table(result))
    print("written: %s" % ", ".join(str(p) for p in paths.values()))
    return 0


def run_cpu(args):
    from ..bench import cpu, report
    from ..bench.frames import real_frames, synthetic_frame
    from ..models import zoo
    try:
        entry = zoo.get(args.model)
    except KeyError as exc:
        raise CommandError(str(exc).strip('"')) from exc
    frames = real_frames(camvid=args.camvid_frames)
    if not frames:
        print("no real frames ($ESPNET_ROS_DATA unset): agreement is on a synthetic frame")
        frames = [("synthetic", synthetic_frame(*args.size))]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.study in ("both", "labels"):
        run_labels(args, frames)
    if args.study == "labels":
        return 0
    from ..inference.backends.cpu_optim import ALL_STEPS
    steps = args.steps if args.steps is not None else STEP_SEQUENCE
    unknown = set(steps) - set(ALL_STEPS)
    if unknown:
        raise CommandError("unknown steps %s; known: %s" % (", ".join(sorted(unknown)),
                                                            ", ".join(ALL_STEPS)))
    candidates = cpu.default_candidates(compile_step=not args.no_compile,
                                        onnxruntime=not args.no_onnxruntime,
                                        thread_counts=args.threads, step_sequence=steps)
    result = cpu.run_cpu_study(args.model, args.size, frames, candidates, args.rounds,
                               args.iterations, pretrained=bool(entry.weights_file))
    result["command"] = _cpu_command(args)
    text, path = report.write_cpu_report(result, args.out)
    print(text, end="")
    print("written: %s" % path)
    return 0


def _calibrations(paths, models):
    """{model: [(precision, file)]} from calibration files (their own model and precision)."""
    from ..inference.calibration import load_spec
    found = {name: [] for name in models}
    for path in paths:
        try:
            spec = load_spec(path)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if spec.model not in found:
            raise CommandError("%s calibrates %s, which is not among the models (%s)"
                               % (spec.path, spec.model, ", ".join(models)))
        found[spec.model].append((spec.precision, spec.path))
    return found


def run_labels(args, frames):
    """The image -> labels study for each model; writes bench_cpu_labels.{json,md}."""
    from ..bench import labels, report
    from ..models import zoo
    models = args.models or (args.model,)
    for name in models:
        try:
            zoo.get(name)
        except KeyError as exc:
            raise CommandError(str(exc).strip('"')) from exc
    calibrations = _calibrations(args.calibration, models)
    results = []
    for name in models:
        load_before = report.load_text()
        paths = labels.default_paths(calibrations[name], openvino=not args.no_openvino)
        result = labels.run_labels_study(name, args.size, frames, paths, args.rounds,
                                         args.iterations,
                                         pretrained=bool(zoo.get(name).weights_file))
        result["load"] = "before: %s; after: %s" % (load_before, report.load_text())
        result["command"] = _cpu_command(args)
        results.append(result)
    text, path = report.write_labels_report(results, _cpu_command(args), args.out)
    print(text, end="")
    print("written: %s" % path)
