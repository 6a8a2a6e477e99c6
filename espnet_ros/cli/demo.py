"""``espnet-ros demo``: the live demo (node + camera source in separate processes)."""
import os
from pathlib import Path

from . import CommandError
from .predict import parse_size


def default_source():
    data = os.environ.get("ESPNET_ROS_DATA")
    return str(Path(data) / "cityscapes_samples") if data else None


def add_parser(sub):
    p = sub.add_parser("demo", help="live demo: camera source -> node, printing FPS/latency/power")
    p.add_argument("--source", default=None,
                   help="image folder, video or rosbag (default: $ESPNET_ROS_DATA/cityscapes_samples)")
    p.add_argument("--model", default="espnet-p2q8-cityscapes")
    p.add_argument("--rate", type=float, default=5.0, help="camera frames per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to watch after the first output")
    p.add_argument("--encoding", default="bgr8")
    p.add_argument("--size", type=parse_size, help="resize camera frames to WIDTHxHEIGHT")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter (repeatable)")
    p.add_argument("--starter", choices=("auto", "launch", "direct"), default="auto",
                   help="start the node with `ros2 launch espnet_ros segment.launch.py` (launch), "
                        "directly (direct), or with ros2 launch where it is available (auto)")
    p.set_defaults(func=run)


def run(args):
    from ..tools.demo import run_demo
    source = args.source or default_source()
    if not source or not Path(source).exists():
        raise CommandError("no camera source: pass --source or set ESPNET_ROS_DATA")
    extra = dict(item.split(":=", 1) for item in args.param)
    try:
        run_demo(source, args.out, args.model, args.rate, args.duration, args.encoding,
                 extra_params=extra, size=args.size, starter=args.starter)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    return 0
