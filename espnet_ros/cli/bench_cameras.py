"""``espnet-ros bench cameras``: N cameras into one node vs. N single-camera nodes
(see tools/bench_cameras)."""
from pathlib import Path

from . import CommandError
from .predict import parse_size


def add_parser(bench_sub):
    """Registers ``cameras`` under the ``bench`` subcommand's subparsers."""
    p = bench_sub.add_parser("cameras", help="N cameras into one node (one model, batched) vs. "
                                             "N single-camera nodes: RSS, FPS, latency, CPU")
    p.add_argument("--cameras", type=int, default=4, help="number of cameras (default 4)")
    p.add_argument("--model", default="espnet-p2q8-cityscapes")
    p.add_argument("--frame-size", type=parse_size, default=(1024, 512),
                   help="camera frame WIDTHxHEIGHT (default 1024x512)")
    p.add_argument("--model-size", type=parse_size,
                   help="model input WIDTHxHEIGHT (default: the model's native size)")
    p.add_argument("--seconds", type=float, default=25.0, help="length of each measurement")
    p.add_argument("--runs", type=int, default=3, help="runs; each measures both set-ups")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the one node (0: its default, all cores); each of "
                        "the N single-camera nodes gets cores // N (at least 1)")
    p.add_argument("--frame", help="image to send (default: a Cityscapes sample frame)")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.set_defaults(func=run)


def run(args):
    from ..models import zoo
    from ..tools.bench_cameras import markdown, run_bench
    from .bench_node import read_frame
    frame = read_frame(args.frame)
    if args.cameras < 1 or args.runs < 1:
        raise CommandError("--cameras and --runs must be at least 1")
    try:
        model_size = args.model_size or tuple(zoo.get(args.model).input_size)
        report = run_bench(args.model, frame, args.cameras, args.frame_size, model_size,
                           args.seconds, args.runs, args.out, one_node_threads=args.threads)
    except (KeyError, RuntimeError) as exc:
        raise CommandError(str(exc).strip('"')) from exc
    print(markdown(report), end="")
    print("written: %s" % (args.out / "bench_cameras.json"))
    return 0
