"""``espnet-ros bench node``: bare inference vs. the node across processes (see ros/bench_node)."""
import os
from pathlib import Path

import cv2

from . import CommandError
from .predict import parse_size


def add_parser(bench_sub):
    """Registers ``node`` under the ``bench`` subcommand's subparsers."""
    p = bench_sub.add_parser("node", help="bare inference vs. the node across processes")
    p.add_argument("--model", default="espnet-p2q8-cityscapes")
    p.add_argument("--size", type=parse_size, default=(1024, 512), help="frame and model size")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    p.add_argument("--frame", help="image to send (default: a Cityscapes sample frame)")
    p.add_argument("--outputs", default="label",
                   help="comma-separated node outputs subscribed: label,color_mask,overlay")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.set_defaults(func=run)


def run(args):
    from ..ros.bench_node import markdown, run_bench
    path = args.frame or os.path.join(os.environ.get("ESPNET_ROS_DATA", ""), "cityscapes_samples",
                                      "frankfurt_000000_000294_leftImg8bit.png")
    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise CommandError("cannot read frame %s (pass --frame or set ESPNET_ROS_DATA)" % path)
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    unknown = set(outputs) - {"label", "color_mask", "overlay"}
    if unknown or not outputs:
        raise CommandError("unknown outputs: %s" % ", ".join(sorted(unknown)) if unknown
                           else "no outputs given")
    try:
        report = run_bench(args.model, args.size, frame, args.seconds, args.out, outputs)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    print(markdown(report), end="")
    print("written: %s" % (args.out / "bench_node.json"))
    return 0
