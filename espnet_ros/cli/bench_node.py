"""``espnet-ros bench node``: bare inference vs. the node across processes (see tools/bench_node)."""
import os
from pathlib import Path

import cv2

from . import CommandError
from .predict import parse_size


def add_parser(bench_sub):
    """Registers ``node`` under the ``bench`` subcommand's subparsers."""
    from ..tools.bench_node import OUTPUTS

    p = bench_sub.add_parser("node", help="the node's work in one process vs. the node across "
                                          "processes: throughput ratio, added latency, stages")
    p.add_argument("--model", default="espnet-p2q8-cityscapes")
    p.add_argument("--frame-size", type=parse_size, default=(1024, 512),
                   help="camera frame WIDTHxHEIGHT (default 1024x512)")
    p.add_argument("--model-size", type=parse_size,
                   help="model input WIDTHxHEIGHT (default: the model's native size)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--frame", help="image to send (default: a Cityscapes sample frame)")
    p.add_argument("--outputs", default="label",
                   help="comma-separated node outputs subscribed: %s" % ",".join(OUTPUTS))
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads, in the node and in process (0: the node's default)")
    p.add_argument("--no-pipelining", action="store_true",
                   help="the node renders and publishes on its model thread")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.set_defaults(func=run)


def read_frame(path=None):
    """The frame a node benchmark sends: ``path``, or a Cityscapes sample frame."""
    path = path or os.path.join(os.environ.get("ESPNET_ROS_DATA", ""), "cityscapes_samples",
                                "frankfurt_000000_000294_leftImg8bit.png")
    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise CommandError("cannot read frame %s (pass --frame or set ESPNET_ROS_DATA)" % path)
    return frame


def run(args):
    from ..models import zoo
    from ..tools.bench_node import OUTPUTS, markdown, run_bench
    frame = read_frame(args.frame)
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    unknown = set(outputs) - set(OUTPUTS)
    if unknown or not outputs:
        raise CommandError("unknown outputs: %s (known: %s)" % (", ".join(sorted(unknown)),
                                                                 ", ".join(OUTPUTS))
                           if unknown else "no outputs given")
    if args.rounds < 1:
        raise CommandError("--rounds must be at least 1")
    try:
        model_size = args.model_size or tuple(zoo.get(args.model).input_size)
        report = run_bench(args.model, frame, args.frame_size, model_size, args.seconds,
                           args.out, outputs, args.rounds, threads=args.threads,
                           pipelining=not args.no_pipelining)
    except (KeyError, RuntimeError) as exc:
        raise CommandError(str(exc).strip('"')) from exc
    print(markdown(report), end="")
    print("written: %s" % (args.out / "bench_node.json"))
    return 0
